"""Reading an uploaded body within its limits, shared by the upload routes (seed sets,
benchmark sets): the bytes refused with 413 as soon as they pass the limit, and the text
checked (UTF-8, no NUL) with a 422 naming where, before any parser sees it."""

from __future__ import annotations

from fastapi import HTTPException, Request

from app.api.errors import field_error


def decode_text(raw: bytes, loc: tuple[str, ...], limit: int) -> str:
    """`raw` as UTF-8 text (a BOM dropped): 413 past `limit`, a 422 at `loc` for bytes that are
    not UTF-8 or hold a NUL."""
    if len(raw) > limit:
        raise HTTPException(413, f"{'.'.join(loc)}: larger than {limit // (1024 * 1024)} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise field_error(loc, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if "\x00" in text:
        raise field_error(loc, f"contains a NUL character (at character {text.index(chr(0))})")
    return text


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` (declared or streamed)."""
    too_big = HTTPException(413, f"body larger than {limit // (1024 * 1024)} MB")
    length = request.headers.get("content-length", "0")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)
