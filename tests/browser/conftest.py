"""One Chromium for every browser test module: a fixture imported into each module would be
one per module, and Playwright's sync API cannot run two at once. It is package-scoped, so
it stops after the browser tests (see `browser_fixtures.browser`)."""

from tests.browser.browser_fixtures import browser  # noqa: F401
