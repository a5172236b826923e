"""`GET /dashboard` (and `/` redirects there): the dashboard page and its static files.

The page itself is public and holds no data; its scripts ask the user for an API key
(checked against `/api/v1/jobs` before it is kept in the browser's localStorage) and talk
to `/api/v1` with it. Every asset it loads is a file of `app/dashboard/static/` served
here (the vendored libraries with their licenses included), so the page works offline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "dashboard"
STATIC_DIR = DASHBOARD_DIR / "static"
TEMPLATES = Jinja2Templates(directory=str(DASHBOARD_DIR / "templates"))
MEDIA = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".txt": "text/plain",
         ".svg": "image/svg+xml", ".png": "image/png"}
POLL_MS = 2000

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "dashboard.html", {"api": "/api/v1", "poll_ms": POLL_MS})


@router.get("/dashboard/static/{name}")
def static_file(name: str) -> FileResponse:
    """One file of the static folder, by its exact name (no paths: nothing else can be read)."""
    path = STATIC_DIR / name
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file() or path.suffix not in MEDIA:
        raise HTTPException(404, f"no dashboard file {name!r}")
    return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})
