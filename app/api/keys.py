"""API keys: made once, shown once, stored as a SHA-256 hash.

A key is `sk_` + 32 random bytes (URL-safe base64), so a plain hash (no salt, no slow KDF)
is enough: nobody can guess or brute-force 256 random bits, and the hash lets a request be
checked with one indexed lookup. `prefix` (the first characters) identifies a key in
listings without revealing it. Framework-free, so the CLI uses it without FastAPI.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, select

from app.models import ApiKey, utcnow

KEY_PREFIX = "sk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, name: str, owner: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key; returns the row and the key itself (the only time it is known)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, owner=owner or name, key_hash=hash_key(key), prefix=key[:10])
    session.add(row)
    session.flush()
    return row, key


def lookup(session: Session, key: str) -> ApiKey | None:
    """The live (not revoked) key row for a presented key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id)).all())


def revoke(session: Session, ref: str) -> ApiKey | None:
    """Revoke the key whose id or prefix is `ref`; returns it, or None if there is none."""
    query = select(ApiKey).where(ApiKey.id == int(ref)) if ref.isdigit() and int(ref) < 2**31 else select(ApiKey).where(ApiKey.prefix == ref)
    row = session.exec(query).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
