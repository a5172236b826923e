"""The domain core: generation, filtering, export and training in plain Python.

Nothing in here imports FastAPI or Celery; the API, the workers and the CLI are shells
around these modules.
"""
