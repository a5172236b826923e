"""What routes ask for, declared once as `Annotated` aliases: settings, a database session,
the caller's API key and owner, the job dispatcher, and owned-resource lookups.

The dispatcher (`app.core.jobs.dispatch.Dispatcher`: where a new job is sent to run) is made
by the factory the app is created with (`create_app(settings, dispatcher=...)`; the served
app's is the Celery one, `app/asgi.py`), so the API imports no worker code.

Authentication is a bearer API key (`sprout apikey create`); its `owner` scopes every seed
set, job and export. Another owner's resource answers 404, as if it did not exist, so ids
reveal nothing.

Why the session is handed out by an async dependency, behind a slot: sync code runs on a
bounded thread pool, and a request's session holds a pooled connection from its first query
to its end, across several thread hops. With more requests than connections, threads
blocked waiting for a connection filled the thread pool while the requests holding the
connections waited for a thread: the API stalled until the pool timeout and answered 500s.
Now a request first takes one of `api_db_slots` slots (at most `db.POOL_SIZE`), waiting in
the event loop (no thread held); admitted requests never outnumber the connections (the
pool's overflow is left to `/readyz` and the like), so no thread ever waits for one, and
the thread pool is sized above the pool (`reserve_threads`). Few slots serve best: one
process runs Python on one core, and threads beyond a handful only fight for the GIL
(measured with `benchmarks/api_load.py` at 100 clients on 2 cores: 4 slots gave about 1.5
times the rate of 10, and 2.5 times that of 2). A request that cannot get a slot within
`db.POOL_TIMEOUT_S` is answered 503 with `Retry-After`. Trivial dependencies are async so
that they cost no thread hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, HTTPException, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, SQLModel
from starlette.concurrency import run_in_threadpool

from app import db
from app.api import keys
from app.core.jobs.dispatch import Dispatcher
from app.models import ApiKey
from app.settings import Settings

MAX_ID = 2**31 - 1  # SQL integer ids

_bearer = HTTPBearer(auto_error=False, description="An API key made with `sprout apikey create`.")


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

T = TypeVar("T")


def reserve_threads() -> None:
    """Size the thread pool above the database slots (call from inside the event loop)."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, 2 * db.POOL_CAPACITY)


def _slots(app: FastAPI) -> anyio.Semaphore:
    """The app's database slots, made in the loop that serves it (a test may run several loops)."""
    loop = asyncio.get_running_loop()
    held = getattr(app.state, "db_slots", None)
    if held is None or held[0] is not loop:
        held = app.state.db_slots = (loop, anyio.Semaphore(min(app.state.settings.api_db_slots, db.POOL_SIZE)))
    return held[1]


async def get_session(request: Request, settings: SettingsDep) -> AsyncIterator[Session]:
    """One session per request, committed when the request succeeds, rolled back otherwise."""
    slots = _slots(request.app)
    try:
        with anyio.fail_after(db.POOL_TIMEOUT_S):
            await slots.acquire()
    except TimeoutError:
        raise HTTPException(503, "the server is busy (every database connection is in use); try again shortly",
                            headers={"Retry-After": "2"}) from None
    try:
        session = Session(db.get_engine(settings.resolved_database_url), expire_on_commit=False)
        try:
            yield session
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _end(session, commit=False)
            raise
        with anyio.CancelScope(shield=True):
            await _end(session, commit=True)
    finally:
        slots.release()


async def _end(session: Session, commit: bool) -> None:
    if not session.in_transaction():
        session.close()  # holds no connection: nothing to send, no thread needed
        return

    def end() -> None:
        try:
            if commit:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    await run_in_threadpool(end)


SessionDep = Annotated[Session, Depends(get_session)]


async def in_session(session: Session, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` and the commit of the session, in one thread hop (for routes on hot paths:
    each hop costs a thread switch under the GIL, and the answer is then built in the loop)."""

    def run() -> T:
        result = work(*args)
        session.commit()
        return result

    return await run_in_threadpool(run)


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def get_current_key(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> ApiKey:
    if credentials is None:
        raise _unauthorized("missing API key: send `Authorization: Bearer <key>` (make one with `sprout apikey create`)")
    key = await run_in_threadpool(keys.lookup, session, credentials.credentials)
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    return key


CurrentKey = Annotated[ApiKey, Depends(get_current_key)]


async def get_owner(key: CurrentKey) -> str:
    return key.owner


Owner = Annotated[str, Depends(get_owner)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A numeric id.", examples=[1])]

M = TypeVar("M", bound=SQLModel)


def owned(session: Session, model: type[M], ident: int, owner: str, what: str) -> M:
    """The row `ident` of `model` if `owner` owns it; 404 otherwise (absent or not theirs)."""
    row = session.get(model, ident) if 1 <= ident <= MAX_ID else None
    if row is None or getattr(row, "owner", None) != owner:
        raise HTTPException(404, f"no {what} with id {ident}")
    return row
