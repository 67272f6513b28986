"""The device outbox: ordered, idempotent on fault_id, durable across reopen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devices.outbox import EntryStatus, Outbox, OutboxError

TOPIC = "dt/aftercare/dev-1/fault"


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outboxes" / "dev-1.sqlite3"


@pytest.fixture
def outbox(outbox_path: Path):
    box = Outbox(outbox_path)
    yield box
    box.close()


def test_pending_entries_come_back_in_insertion_order(outbox: Outbox):
    # Given three reports added one after another
    for n in range(3):
        outbox.add(TOPIC, f"payload-{n}".encode(), f"fault-000{n}")
    # When the pending entries are read
    pending = outbox.pending()
    # Then they come back oldest first, byte for byte
    assert [e.fault_id for e in pending] == ["fault-0000", "fault-0001", "fault-0002"]
    assert [e.payload for e in pending] == [b"payload-0", b"payload-1", b"payload-2"]
    assert all(e.topic == TOPIC and e.status is EntryStatus.PENDING for e in pending)


def test_adding_the_same_fault_id_again_is_a_no_op(outbox: Outbox):
    # Given a report already in the outbox
    first = outbox.add(TOPIC, b"original", "fault-aaaa")
    # When the same fault_id is added again (a retry), even with other bytes
    again = outbox.add(TOPIC, b"retried", "fault-aaaa")
    # Then the existing entry is returned and nothing new is queued
    assert again == first
    assert [e.payload for e in outbox.pending()] == [b"original"]


def test_a_delivered_fault_id_is_not_queued_again(outbox: Outbox):
    # Given a report whose PUBACK has arrived
    entry_id = outbox.add(TOPIC, b"x", "fault-bbbb")
    outbox.mark_delivered(entry_id)
    # When the device retries it
    assert outbox.add(TOPIC, b"x", "fault-bbbb") == entry_id
    # Then it stays delivered and is not pending
    assert outbox.pending() == []
    found = outbox.find("fault-bbbb")
    assert found is not None and found.status is EntryStatus.DELIVERED


def test_mark_delivered_removes_only_that_entry_from_pending(outbox: Outbox):
    # Given three pending reports
    ids = [outbox.add(TOPIC, b"p", f"fault-c00{n}") for n in range(3)]
    # When the middle one is acknowledged
    changed = outbox.mark_delivered(ids[1])
    # Then the others stay pending, in order
    assert changed is True
    assert [e.entry_id for e in outbox.pending()] == [ids[0], ids[2]]
    assert outbox.pending_count() == 2


def test_settling_twice_or_settling_an_unknown_entry_changes_nothing(outbox: Outbox):
    # Given a delivered entry
    entry_id = outbox.add(TOPIC, b"p", "fault-dddd")
    assert outbox.mark_delivered(entry_id)
    # When it is acknowledged again, rejected late, or an unknown id is acknowledged
    # Then nothing changes
    assert outbox.mark_delivered(entry_id) is False
    assert outbox.mark_rejected(entry_id, "late") is False
    assert outbox.mark_delivered(99_999) is False
    found = outbox.get(entry_id)
    assert found is not None and found.status is EntryStatus.DELIVERED


def test_a_rejected_entry_leaves_pending_and_keeps_its_reason(outbox: Outbox):
    # Given a pending report
    entry_id = outbox.add(TOPIC, b"p", "fault-eeee")
    # When the broker rejects it
    outbox.mark_rejected(entry_id, "Not authorized")
    # Then it is no longer pending and says why
    assert outbox.pending() == []
    found = outbox.get(entry_id)
    assert found is not None
    assert (found.status, found.reason) == (EntryStatus.REJECTED, "Not authorized")


def test_pending_entries_survive_closing_and_reopening(outbox_path: Path):
    # Given a process that queued three reports and acknowledged one, then exited
    with Outbox(outbox_path) as first:
        ids = [first.add(TOPIC, f"p{n}".encode(), f"fault-f00{n}") for n in range(3)]
        first.mark_delivered(ids[0])
    # When a new process opens the same file
    with Outbox(outbox_path) as second:
        pending = second.pending()
        # Then the unacknowledged ones are still there, in order, and ids keep growing
        assert [e.fault_id for e in pending] == ["fault-f001", "fault-f002"]
        assert second.add(TOPIC, b"p3", "fault-f003") > ids[2]
        assert second.add(TOPIC, b"again", "fault-f000") == ids[0]


def test_the_outbox_file_uses_write_ahead_logging(outbox: Outbox):
    # Given an open outbox
    # When its journal mode is inspected
    mode = outbox._db.execute("PRAGMA journal_mode").fetchone()[0]
    # Then it is WAL
    assert mode == "wal"


def test_prune_keeps_pending_and_the_newest_settled_entries(outbox: Outbox):
    # Given five settled and one pending entry
    ids = [outbox.add(TOPIC, b"p", f"fault-g00{n}") for n in range(6)]
    for entry_id in ids[:5]:
        outbox.mark_delivered(entry_id)
    # When all but the two newest settled entries are pruned
    removed = outbox.prune(keep_settled=2)
    # Then three went, the pending one stayed, and the kept ones still block re-adding
    assert removed == 3
    assert [e.entry_id for e in outbox.pending()] == [ids[5]]
    assert outbox.add(TOPIC, b"p", "fault-g004") == ids[4]


def test_concurrent_adds_from_many_threads_lose_nothing(outbox: Outbox):
    # Given eight threads each adding 25 reports (as paho and caller threads would)
    def add_many(worker: int) -> None:
        for n in range(25):
            outbox.add(TOPIC, b"p", f"fault-w{worker}-{n:03d}")

    threads = [threading.Thread(target=add_many, args=(w,)) for w in range(8)]
    # When they all run at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every report is stored exactly once
    pending = outbox.pending()
    assert len(pending) == 200
    assert len({e.fault_id for e in pending}) == 200


def test_an_unusable_file_is_reported_with_its_path(tmp_path: Path):
    # Given a file that is not a SQLite database
    path = tmp_path / "dev-1.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    # When it is opened as an outbox
    # Then the error names the file
    with pytest.raises(OutboxError, match=str(path)):
        Outbox(path)


def test_using_a_closed_outbox_is_a_clear_error(outbox_path: Path):
    # Given a closed outbox
    box = Outbox(outbox_path)
    box.close()
    # When it is used
    # Then an OutboxError says so
    with pytest.raises(OutboxError, match="cannot read outbox"):
        box.pending()
