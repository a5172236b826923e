"""Datasets: named, versioned, growing collections of curated examples.

A dataset (unique name per owner) holds a recipe (`recipe.py`: seed sets, generation
steps, `grow_by`, export formats, size cap) and, optionally, a schedule (`schedule.py`).
Each build, removal or correction makes a new version; versions are immutable and linear
(version N+1's parent is N, and a change always starts from the latest version).

Membership. Each example is stored once, with the version that added it (`added_in`) and
the one that removed it (`removed_in`, null while it is live). The rows of version v are
those with added_in <= v and (removed_in null or > v), in the stable order (added_in,
position). Storage grows with the examples, never with examples x versions; a build
inserts only its new rows (`versions.commit_version`), a removal only sets `removed_in`
on the rows it drops, and a correction removes the old row and adds the new one with
`replaces_id` pointing back (`curation.py`). Nothing else is ever updated in place, so an
old version reads byte for byte as it did.

Content hash. sha256 over the canonical rows (canonical JSON of the content fields), as a
two-level tree by the version that added the rows, so a commit rehashes only what it
changed; stable across SQLite and PostgreSQL (`content.py`). It is the ETag of downloads
(`export.py` streams any version in any export format).

Tags. `latest` moves by itself at each commit; user tags move on request, which is the
rollback (`tags.py`). Only the latest version can be deleted, and only when no training
run used it and no user tag points at it (`deletion.py`). `diff.py` compares any two
versions of one dataset; `seeding.py` feeds a build's novelty and near-duplicate indexes
with the dataset's whole current content; `fires.py` fires each scheduled due time once,
however many schedulers run, and pauses a schedule whose builds stopped paying off.

Functions take the caller's SQLModel session and never commit (except `fires.tick`,
which commits each dataset's claimed fires); errors a caller must fix are
`errors.DatasetError` subclasses whose message names the field at fault.
"""
