"""Screenshots of the docs site: the home page and one guide at 1440 and 390 px, in Chromium.

Builds the site (`mkdocs build --strict`), serves `site/` on a free local port, and drives
Debian's Chromium through Playwright (as the dashboard's browser tests do) to write
`docs/screenshots/{home,guide-vllm}-{1440,390}.png`. Each page is also checked for what
the site promises: no request leaves the local server, and no horizontal scroll.

Run: .venv/bin/python scripts/docs_screenshots.py
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PAGES = {"home": "index.html", "guide-vllm": "guides/vllm.html"}
WIDTHS = {1440: 900, 390: 844}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # one line per screenshot is enough
        pass


def main() -> int:
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"], cwd=ROOT, env=env, check=True)
    handler = functools.partial(QuietHandler, directory=str(ROOT / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    OUT.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for width, height in WIDTHS.items():
                page = browser.new_page(viewport={"width": width, "height": height})
                outside: list[str] = []
                page.on("request", lambda req, seen=outside: seen.append(req.url)
                        if urlparse(req.url).netloc != urlparse(base).netloc and not req.url.startswith("data:") else None)
                for name, path in PAGES.items():
                    page.goto(f"{base}/{path}", wait_until="networkidle")
                    if page.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
                        problems.append(f"{path} at {width} px scrolls sideways")
                    target = OUT / f"{name}-{width}.png"
                    page.screenshot(path=str(target))
                    print(f"wrote {target.relative_to(ROOT)}")
                problems += [f"request outside the site at {width} px: {url}" for url in outside]
                page.close()
            browser.close()
    finally:
        server.shutdown()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
