"""A version's content hash: sha256 over its canonical rows, kept up to date in O(changed rows).

Canonical row: the JSON of the example's content fields (`CONTENT_FIELDS`: instruction,
input, output, method, lineage, scores, and `turns` when a conversation has later turns) with sorted keys, no spaces, UTF-8, no NaN. Ids,
provenance and timestamps are not content, so the same rows hash the same on SQLite and
PostgreSQL. Each row's `digest` = sha256(canonical row) is computed once, when the row is
inserted, and stored next to it.

The hash of a version is a two-level hash tree over its rows in their stable order
(`added_in`, `position`):

    segment digest(k) = sha256(digest_1 || digest_2 || ...)   over the live rows version k added
    content hash(v)   = sha256(segment digest(k1) || segment digest(k2) || ...)   k1 < k2 < ..., non-empty segments

Why not one sha256 over every row: a commit would then read all N rows (or keep a hash
state that Python cannot store). With segments, a build only digests its new rows and
reads one stored digest per earlier segment (`dataset_hash_segments`): O(new rows +
versions). A removal or correction re-reads the stored row digests (32 bytes each, not the
content) of the segments it touches: O(rows of those segments). The price: the hash also
depends on how the rows are grouped into the versions that added them, so two datasets
hold the same hash when they hold the same rows added in the same groups; the same
commits always give the same hash, on any database. `versions.content_hash` recomputes it
from the content itself (O(rows), for verification).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

CONTENT_FIELDS = ("instruction", "input", "output", "method", "lineage", "scores")
# and a conversation's later turns, part of the content only when there are any: a
# single-turn row hashes as it did before rows could hold conversations
OPTIONAL_CONTENT_FIELDS = ("turns",)
ROW_CONTENT_FIELDS = (*CONTENT_FIELDS, *OPTIONAL_CONTENT_FIELDS)
EMPTY_HASH = hashlib.sha256(b"").hexdigest()


def canonical_json(row: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a row's content fields (a missing field is an error; an empty
    optional one is left out)."""
    content = {name: row[name] for name in CONTENT_FIELDS}
    content.update({name: row[name] for name in OPTIONAL_CONTENT_FIELDS if row.get(name)})
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def row_digest(row: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical row."""
    return hashlib.sha256(canonical_json(row)).hexdigest()


def segment_digest(row_digests: Iterable[str]) -> str:
    """sha256 hex over the row digests (hex) of one segment, in position order."""
    h = hashlib.sha256()
    for digest in row_digests:
        h.update(bytes.fromhex(digest))
    return h.hexdigest()


def combine_segments(segment_digests: Iterable[str]) -> str:
    """The content hash from the digests (hex) of the non-empty segments, by added_in."""
    return segment_digest(segment_digests)
