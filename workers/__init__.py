"""Celery shell: the worker processes that run jobs (see `celery_app` and `tasks`)."""
