"""One engine per process: a forked child must not use the connections it inherited."""

import os

from sqlalchemy import text

from app import db


def _child_query(url: str, parent_backend: int) -> int:
    """Fork; the child queries through `get_engine` and exits 0 if it used a connection of its own."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            with db.get_engine(url).connect() as conn:
                backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                for _ in range(8):  # past psycopg's prepare threshold
                    conn.execute(text("SELECT 1")).scalar()
            code = 0 if backend != parent_backend else 3
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_forked_child_builds_its_own_engine_and_leaves_the_parents_connection_alone(pg_url):
    db.dispose_engines()  # a pool holding one connection: the next checkout is that one again
    parent_engine = db.get_engine(pg_url)
    with parent_engine.connect() as conn:  # a pooled connection the child inherits
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    assert parent_engine.pool.checkedin() >= 1

    statuses = [_child_query(pg_url, backend) for _ in range(3)]
    assert statuses == [0, 0, 0]

    # the parent's pooled connection still works, and is the same backend (the child neither used nor closed it)
    with parent_engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == backend
    assert db.get_engine(pg_url) is parent_engine
