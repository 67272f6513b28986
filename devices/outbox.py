"""On-disk outbox: fault reports a device has raised but the broker has not acknowledged yet.

One SQLite file (WAL mode) per device. An entry is written before the first publish attempt and
leaves the pending set only when its PUBACK arrives, so a fault survives a dead network, a dead
broker and a restarted process, and comes out in the order it was raised. Settled entries stay
(pruned to a bounded history) so that adding the same ``fault_id`` again stays a no-op.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

SCHEMA_VERSION = 1
DEFAULT_SETTLED_HISTORY = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    entry_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    fault_id   TEXT NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_at TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'delivered', 'rejected')),
    settled_at TEXT,
    reason     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (status, entry_id);
"""

_COLUMNS = "entry_id, fault_id, topic, payload, created_at, status, reason"


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or used (corrupt, unwritable, locked too long)."""


class EntryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored report: the exact bytes to publish and where to publish them."""

    entry_id: int
    fault_id: str
    topic: str
    payload: bytes
    created_at: datetime
    status: EntryStatus
    reason: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _entry(row: tuple[int, str, str, bytes, str, str, str | None]) -> OutboxEntry:
    entry_id, fault_id, topic, payload, created_at, status, reason = row
    return OutboxEntry(
        entry_id=entry_id,
        fault_id=fault_id,
        topic=topic,
        payload=bytes(payload),
        created_at=datetime.fromisoformat(created_at),
        status=EntryStatus(status),
        reason=reason,
    )


class Outbox:
    """Durable, ordered, idempotent queue of unacknowledged reports; safe across threads.

    Several processes may open the same file (WAL allows concurrent readers and serialises
    writers); ``durable=False`` trades power-loss durability for speed (process crashes are
    still survived), which suits simulated fleets.
    """

    def __init__(self, path: Path, *, durable: bool = True, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc

    def add(self, topic: str, payload: bytes, fault_id: str) -> int:
        """Store a report and return its entry id; a known ``fault_id`` returns the existing id."""
        with self._guard("add to"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO outbox (fault_id, topic, payload, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (fault_id, topic, payload, _now()),
                )
                row = self._db.execute(
                    "SELECT entry_id FROM outbox WHERE fault_id = ?", (fault_id,)
                ).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(row[0])

    def get(self, entry_id: int) -> OutboxEntry | None:
        with self._guard("read"):
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE entry_id = ?",  # noqa: S608 constant columns
                (entry_id,),
            ).fetchone()
        return None if row is None else _entry(row)

    def find(self, fault_id: str) -> OutboxEntry | None:
        with self._guard("read"):
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE fault_id = ?",  # noqa: S608 constant columns
                (fault_id,),
            ).fetchone()
        return None if row is None else _entry(row)

    def pending(self) -> list[OutboxEntry]:
        """Unacknowledged entries, oldest first (the order they must be published in)."""
        with self._guard("read"):
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending'"  # noqa: S608 constant columns
                " ORDER BY entry_id"
            ).fetchall()
        return [_entry(row) for row in rows]

    def pending_count(self) -> int:
        with self._guard("read"):
            row = self._db.execute(
                "SELECT count(*) FROM outbox WHERE status = 'pending'"
            ).fetchone()
        return int(row[0])

    def mark_delivered(self, entry_id: int) -> bool:
        """Record the PUBACK; returns False when the entry was unknown or already settled."""
        return self._settle(entry_id, EntryStatus.DELIVERED, None)

    def mark_rejected(self, entry_id: int, reason: str) -> bool:
        """Record a PUBACK with a failure reason code; the entry is kept for inspection."""
        return self._settle(entry_id, EntryStatus.REJECTED, reason)

    def prune(self, keep_settled: int = DEFAULT_SETTLED_HISTORY) -> int:
        """Forget all but the newest ``keep_settled`` settled entries; returns how many went."""
        with self._guard("prune"):
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND entry_id NOT IN"
                " (SELECT entry_id FROM outbox WHERE status != 'pending'"
                "  ORDER BY entry_id DESC LIMIT ?)",
                (keep_settled,),
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _settle(self, entry_id: int, status: EntryStatus, reason: str | None) -> bool:
        with self._guard("update"):
            cursor = self._db.execute(
                "UPDATE outbox SET status = ?, settled_at = ?, reason = ?"
                " WHERE entry_id = ? AND status = 'pending'",
                (status.value, _now(), reason, entry_id),
            )
        return cursor.rowcount == 1

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Hold the lock; report SQLite failures as ``OutboxError`` naming the file."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot {action} outbox {self.path}: {exc}") from exc
