"""Execution nodes and their leases: who is alive, and what happens to the runs of who is not.

A node holds a lease on its runs by writing its heartbeat into ``nodes``. One silent for longer
than the lease is dead: whoever notices first — any API server in the ``celery`` mode, any
node — fails its runs and forgets it. Every decision is one conditional statement against the
database, so concurrent reapers are harmless, and every time is the database's own clock, so
machines whose clocks disagree still agree on who is silent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Float,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from runyard.execution.base import ABORTED, RunStates
from runyard.storage import Database, Node

log = logging.getLogger("runyard.execution")


def _silent_for(name: str, silence: float) -> str:
    return f"execution node {name} stopped responding (no heartbeat for {silence:.0f} s)"


class NodeTaken(RuntimeError):
    """A live node already has this name."""


@dataclass(frozen=True)
class Membership:
    """One life of a node: its name, and its start time telling it from a later life."""

    name: str
    started_at: float


def database_clock(dialect: str) -> ColumnElement[float]:
    """Unix seconds now, by the database server's clock."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)


def _process_gone(pid: int) -> bool:
    """Whether ``pid`` is dead on this host (a zombie not yet reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class Leases:
    def __init__(self, db: Database, runs: RunStates, *, lease_seconds: float) -> None:
        self.db = db
        self.runs = runs
        self.lease_seconds = lease_seconds
        self._now = database_clock(db.dialect)
        #: The lives this process registered: a row of one of them is never another node's.
        self._mine: set[Membership] = set()

    def _silent(self, name: str) -> ColumnElement[bool]:
        """The node ``name``, while silent for longer than the lease — checked inside each
        statement that acts on it, so a node that has just come back is spared."""
        return (Node.name == name) & (Node.heartbeat_at < self._now - self.lease_seconds)

    def join(self, name: str, slots: int) -> Membership:
        """Register a node; ``NodeTaken`` if a live one has the name.

        A node of that name that is dead — silent past its lease, or provably gone from this
        very host (a restart: same host name, its process gone) — gives its runs up first.
        The same host name and pid is no proof: containers with a fixed host name run every
        node as pid 1. Only a life this very process registered (one it lost track of) is
        known to be over without waiting.
        """
        hostname, pid = socket.gethostname(), os.getpid()
        with self.db.session() as s:
            found = s.execute(
                select(
                    Node.hostname, Node.pid, Node.started_at, self._now - Node.heartbeat_at
                ).where(Node.name == name)
            ).first()
        if found is not None:
            old_host, old_pid, old_start, silence = found
            restarted = Membership(name, old_start) in self._mine or (
                old_host == hostname and old_pid != pid and _process_gone(old_pid)
            )
            if not restarted and silence <= self.lease_seconds:
                raise NodeTaken(
                    f"a live execution node is already named {name!r} (on {old_host}, pid "
                    f"{old_pid}); if it died, its lease runs out {self.lease_seconds:.0f} s "
                    "after its last heartbeat"
                )
            if restarted:
                self._fail_runs(name, f"execution node {name} restarted", None)
            else:
                self._fail_runs(name, _silent_for(name, silence), self._silent(name))
        started_at = time.time()
        try:
            with self.db.session() as s, s.begin():
                s.execute(
                    insert(Node).values(
                        name=name,
                        hostname=hostname,
                        pid=pid,
                        slots=slots,
                        started_at=started_at,
                        heartbeat_at=self._now,
                    )
                )
        except IntegrityError:
            raise NodeTaken(f"another execution node named {name!r} started just now") from None
        member = Membership(name, started_at)
        self._mine.add(member)
        return member

    def holds(self, member: Membership) -> ColumnElement[bool]:
        """A condition for a statement of this life of the node (its claim of a run): its row
        is still there, so whoever reaps the node will fail what the statement claims.

        On PostgreSQL the row is locked (``FOR KEY SHARE``, which heartbeats do not wait for)
        until the statement's transaction ends: a reaper deleting the row either waits for the
        claim to commit and then fails the claimed run (``_fail_runs``), or commits first and
        the claim finds no row.
        """
        return (
            select(Node.name)
            .where(Node.name == member.name, Node.started_at == member.started_at)
            .with_for_update(read=True, key_share=True)
            .exists()
        )

    def beat(self, member: Membership) -> bool:
        """Record that the node is alive; False if this life of it was declared dead (its row
        is gone, or belongs to a later life)."""
        with self.db.session() as s, s.begin():
            changed = s.execute(
                update(Node)
                .where(Node.name == member.name, Node.started_at == member.started_at)
                .values(heartbeat_at=self._now)
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def leave(self, member: Membership, why: str) -> None:
        """Fail what this life of the node still runs with ``why``, and forget it — unless it
        was declared dead meanwhile: its runs were failed then, and the name may be another
        node's now."""
        this_life = (Node.name == member.name) & (Node.started_at == member.started_at)
        self._fail_runs(member.name, why, this_life)

    def reap(self) -> list[str]:
        """Fail the runs of every node silent past its lease, and forget those nodes; their
        names."""
        with self.db.session() as s:
            dead = s.execute(
                select(Node.name, self._now - Node.heartbeat_at).where(
                    Node.heartbeat_at < self._now - self.lease_seconds
                )
            ).all()
        for name, silence in dead:
            self._fail_runs(name, _silent_for(name, silence), self._silent(name))
        return [name for name, _ in dead]

    def _fail_runs(self, name: str, why: str, node: ColumnElement[bool] | None) -> None:
        """Forget the node and fail the runs of ``name`` (those being aborted as aborted) —
        all only if a row of ``nodes`` matched ``node``, when given.

        One transaction, the row deleted first: its lock orders this against the node's claims
        (``holds``), so a run claimed just before is failed here and none is claimed after; and
        no later life of the name can register, let alone claim, before this commits.
        """
        with self.db.session() as s, s.begin():
            gone = s.execute(delete(Node).where(Node.name == name if node is None else node))
            if node is not None and not gone.rowcount:  # type: ignore[attr-defined]
                return  # it came back, or another reaper was first
            aborted = self.runs.fail_owned(name, ("aborting",), ABORTED, session=s)
            failed = self.runs.fail_owned(name, ("running",), why, session=s)
        if aborted or failed:
            log.warning("%s: %d runs failed", why, len(aborted) + len(failed))
