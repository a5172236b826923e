"""`GET /dashboard` (and `/` redirects there): the job dashboard page.

The page itself is public and holds no data; its script asks the user for an API key,
keeps it in the browser's localStorage, and polls `/api/v1` with it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[2] / "dashboard" / "templates"))

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "dashboard.html", {"api": "/api/v1", "poll_ms": 2000})
