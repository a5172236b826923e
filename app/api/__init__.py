"""FastAPI shell over the domain core: `create_app()` in `main`, one router per resource."""
