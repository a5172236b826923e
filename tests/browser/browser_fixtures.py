"""Fixtures for the dashboard's browser tests: the real API served by uvicorn on a free
port (on the test PostgreSQL and Redis), Debian's Chromium driven by Playwright, and a page
that fails its test on any console error or uncaught exception.

Chromium comes from Debian (`scripts/browser.sh` installs it; Playwright's own browser
download cannot work offline). Screenshots go to `test-artifacts/screenshots/`, which CI
keeps with its logs.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
WIDE, NARROW = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveApi:
    """`sprout api`'s app (`create_app`) served by uvicorn in a thread; can be stopped and
    started again on the same port (the page must then show that it is stale)."""

    def __init__(self, settings: Any):
        self.settings, self.port = settings, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        from app.asgi import create_app

        config = uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=30)
            self.server = None


@pytest.fixture
def live_api(api_settings) -> Iterator[LiveApi]:
    api = LiveApi(api_settings)
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the browser tests, stopped after the last of them: Playwright's sync
    API keeps an event loop running in this thread while it lives, and the tests after
    this package call `asyncio.run` (jobs run in-process), which refuses a running loop."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: run scripts/browser.sh (it installs Debian's chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page; `allow` names expected ones (the
    browser logs each 4xx answer the page asked for on purpose, e.g. a refused key)."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@dataclass
class Pages:
    browser: Any
    console: Console
    contexts: list[Any] = field(default_factory=list)

    def open(self, url: str, viewport: dict[str, int] = WIDE, key: str | None = None, **options: Any) -> Any:
        context = self.browser.new_context(viewport=viewport, accept_downloads=True, **options)
        if key is not None:  # a key kept by an earlier visit
            context.add_init_script(f"localStorage.setItem('sprout.apiKey', {key!r})")
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and self.console.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda exc: self.console.errors.append(f"pageerror: {exc}"))
        page.set_default_timeout(30_000)
        page.goto(url)
        return page


@pytest.fixture
def pages(browser, live_api) -> Iterator[Pages]:
    """Pages on `live_api`; closed before it stops (a page left open would log the refused polls)."""
    made = Pages(browser, Console())
    yield made
    for context in made.contexts:
        context.close()
    errors = made.console.unexpected()
    assert not errors, f"the page logged errors: {errors}"


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


LAYOUT_CHECK = """() => {
  const problems = [];
  if (document.documentElement.scrollWidth > window.innerWidth)
    problems.push(`page is ${document.documentElement.scrollWidth}px wide in a ${window.innerWidth}px window`);
  const controls = document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]');
  const modal = document.querySelector('dialog[open]');  // while a modal is open, only its controls count
  for (const el of controls) {
    if (modal && !modal.contains(el)) continue;
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || style.visibility === 'hidden') continue;  // not shown
    el.scrollIntoView({block: 'center', inline: 'center'});
    const s = el.getBoundingClientRect();
    const x = s.left + s.width / 2, y = s.top + s.height / 2;
    if (x < 0 || y < 0 || x > window.innerWidth || y > window.innerHeight) {
      problems.push(`${el.outerHTML.slice(0, 80)}: centre off screen`); continue;
    }
    const hit = document.elementFromPoint(x, y);
    const label = el.labels && el.labels.length ? el.labels[0] : null;
    if (!(hit === el || el.contains(hit) || (label && label.contains(hit))))
      problems.push(`${el.outerHTML.slice(0, 80)}: covered by ${hit ? hit.outerHTML.slice(0, 60) : 'nothing'}`);
  }
  window.scrollTo(0, 0);
  return problems;
}"""


def layout_problems(page: Any) -> list[str]:
    """No horizontal scroll, and every visible control is the element at its own centre."""
    return page.evaluate(LAYOUT_CHECK)


__all__ = ["NARROW", "WIDE", "LiveApi", "Pages", "browser", "layout_problems", "live_api", "pages", "screenshot"]
