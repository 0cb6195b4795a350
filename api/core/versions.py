"""Data version counters: what lets a cache of public reads know it is out of date.

Each context names, per model, the *scopes* a change of one of its rows touches
(``track``): a contract order touches its building's table, its own verify answer and the
project list. When a session commits, the scopes its flushes touched are bumped in
``data_versions`` in the same transaction, right before COMMIT (so the row locks are held
for the commit alone), in sorted order (so two transactions never wait on each other's
rows in opposite orders). A reader that reads the version rows *before* the data can tag
what it rendered with them: if the data was newer than the tag, the tag is only
conservative. After the commit, the new versions are left in ``session.info`` for
whoever publishes them to other processes (``committed_versions``), and this process's
listeners hear of them at once (``on_commit``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from sqlalchemy import BigInteger, String, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from api.db.base import Base
from api.db.engine import insert_into

_TOUCHED = "data_versions.touched"
_PENDING = "data_versions.pending"
_COMMITTED = "data_versions.committed"
_LISTENERS: list[Callable[[str, dict[str, int]], None]] = []

_TRACKED: dict[type, Callable[[Any], Iterable[str]]] = {}

# The scopes public answers depend on, named in one place.
PROJECTS = "projects"  # the project list (unit counts by status)
REGISTER = "register"  # anything the register holds (permits, restrictions, surveys)


def building_scope(building_id: object) -> str:
    """A building's units and their public status."""
    return f"building:{building_id}"


def contract_scope(order_id: object) -> str:
    """A contract's verify answer (status, filing, parties, signatures)."""
    return f"contract:{order_id}"


class DataVersion(Base):
    __tablename__ = "data_versions"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


def track(model: type, scopes_of: Callable[[Any], Iterable[str]]) -> None:
    """A change (insert, update, delete) of a ``model`` row touches ``scopes_of(row)``."""
    _TRACKED[model] = scopes_of


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    touched: set[str] | None = session.info.get(_TOUCHED)
    for obj in chain(session.new, session.dirty, session.deleted):
        scopes_of = _TRACKED.get(type(obj))
        if scopes_of is None:
            continue
        if obj in session.dirty and not session.is_modified(obj, include_collections=False):
            continue
        if touched is None:
            touched = session.info[_TOUCHED] = set()
        touched.update(scopes_of(obj))


@event.listens_for(Session, "before_commit")
def _bump(session: Session) -> None:
    session.flush()  # the last changes name their scopes too
    touched: set[str] | None = session.info.pop(_TOUCHED, None)
    if not touched:
        return
    statement = insert_into(session, DataVersion).values(  # type: ignore[arg-type]
        [{"scope": scope, "version": 1} for scope in sorted(touched)]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[DataVersion.scope], set_={"version": DataVersion.version + 1}
    ).returning(DataVersion.scope, DataVersion.version)
    session.info[_PENDING] = {scope: version for scope, version in session.execute(statement).all()}


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    written: dict[str, int] | None = session.info.pop(_PENDING, None)
    if not written:
        return
    session.info.setdefault(_COMMITTED, {}).update(written)
    url = str(session.get_bind().url)
    for listener in _LISTENERS:
        listener(url, written)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    # What was committed before stays to be published (a refusal may commit, then raise).
    session.info.pop(_TOUCHED, None)
    session.info.pop(_PENDING, None)


def on_commit(listener: Callable[[str, dict[str, int]], None]) -> None:
    """``listener(database_url, versions)`` right after each commit that wrote versions,
    in this process (synchronously: for in-process caches)."""
    _LISTENERS.append(listener)


def committed_versions(session: AsyncSession | Session) -> dict[str, int]:
    """The versions this session's commits wrote since last asked (then forgotten): for
    a cache shared by several processes, published before the answer leaves."""
    return session.info.pop(_COMMITTED, None) or {}


async def read_versions(session: AsyncSession, scopes: Iterable[str]) -> dict[str, int]:
    """The stored versions of ``scopes`` (0 for a scope never bumped)."""
    wanted = list(scopes)
    rows = await session.execute(
        select(DataVersion.scope, DataVersion.version).where(DataVersion.scope.in_(wanted))
    )
    found = {scope: version for scope, version in rows.all()}
    return {scope: found.get(scope, 0) for scope in wanted}
