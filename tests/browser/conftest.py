"""One Chromium for every browser test module: a session fixture imported into each module
would be one per module, and Playwright's sync API cannot run two at once."""

from tests.browser.browser_fixtures import browser  # noqa: F401
