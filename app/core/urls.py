"""Service URLs in messages and logs, without their secrets.

A database or Redis URL may carry a password (`postgresql://user:secret@host/db`); every
message that names a URL shows it through `redact`, so an error line can be pasted into a
ticket as it is.
"""

from __future__ import annotations


def redact(url: str) -> str:
    """The URL with its password (or a bare token in the user part) replaced by `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    creds, host = authority.rsplit("@", 1)
    user, colon, _ = creds.partition(":")
    masked = f"{user}:***" if colon else "***"
    return f"{scheme}://{masked}@{host}{slash}{path}"
