"""Staff tasks (VIP callbacks) on TicketsTable.

Access patterns: K1 all tasks, oldest due first: Query `pk = TASKS` (one partition: callbacks
are a few per hour, far below a partition's 1,000 writes/s; the sort key `<due>#<task_id>`
orders them); K2 one task: GetItem on its pointer, then on the task; a task is written with the
ticket that opens it (`add_task_items` in that transaction, only if new) and completed with a
timeline entry (`task_status = open` guards it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.ticket_items import NEW, conditional_put, timeline_item
from aftercare.adapters.transactions import Cancelled, Failure, TxItem, transact
from aftercare.domain.ports import TaskAlreadyDone, TaskNotFound
from aftercare.models.tasks import Task, TaskStatus
from aftercare.models.tickets import TimelineEntry

TASKS_PK = "TASKS"
INDEX_PK = "TASKIDX"


def task_key(task: Task) -> dict[str, str]:
    return {"pk": TASKS_PK, "sk": f"{task.due_at.isoformat()}#{task.task_id}"}


def task_index_key(task_id: str) -> dict[str, str]:
    """Where a task's sort key is found from its id alone (the route names the id)."""
    return {"pk": f"{INDEX_PK}#{task_id}", "sk": "TASK"}


def add_task_items(table: str, task: Task, entry: TimelineEntry) -> list[TxItem]:
    pointer = {**task_index_key(task.task_id), "task_sk": task_key(task)["sk"]}
    return [
        conditional_put(table, {**task_key(task), **task.model_dump(mode="json")}, NEW,
                        Failure.DUPLICATE),
        conditional_put(table, pointer, NEW, Failure.DUPLICATE),
        conditional_put(table, timeline_item(task.ticket_id, entry)),
    ]  # fmt: skip


def complete_task_items(table: str, task: Task, entry: TimelineEntry) -> list[TxItem]:
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(task_key(task)),
            "UpdateExpression": "SET task_status = :done, done_at = :at, done_by = :by, #n = :note",
            "ConditionExpression": "task_status = :open",
            "ExpressionAttributeNames": {"#n": "note"},
            "ExpressionAttributeValues": {
                ":done": to_attr(TaskStatus.DONE.value),
                ":open": to_attr(TaskStatus.OPEN.value),
                ":at": to_attr(entry.at.isoformat()),
                ":by": to_attr(entry.actor),
                ":note": to_attr(entry.detail.get("note")),
            },
        }
    }
    return [
        TxItem(update, Failure.STALE),
        conditional_put(table, timeline_item(task.ticket_id, entry)),
    ]


class DynamoTaskStore:
    """Staff tasks beside the tickets (see the module's access patterns)."""

    def __init__(self, *, tickets_table: str, ddb: Any | None = None) -> None:
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def list_tasks(self, status: str | None = None) -> list[Task]:
        paginator = self.ddb.get_paginator("query")
        request: dict[str, Any] = {
            "TableName": self.tickets_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": TASKS_PK}},
        }
        if status is not None:
            request["FilterExpression"] = "task_status = :s"
            request["ExpressionAttributeValues"][":s"] = {"S": status}
        return [
            Task.model_validate(from_item(item))
            for page in paginator.paginate(**request)
            for item in page.get("Items", [])
        ]

    def get_task(self, task_id: str) -> Task:
        pointer = self.ddb.get_item(
            TableName=self.tickets_table, Key=to_item(task_index_key(task_id)), ConsistentRead=True
        ).get("Item")
        if not pointer:
            raise TaskNotFound(task_id)
        sk = from_item(pointer)["task_sk"]
        item = self.ddb.get_item(
            TableName=self.tickets_table,
            Key=to_item({"pk": TASKS_PK, "sk": sk}),
            ConsistentRead=True,
        ).get("Item")
        if not item:
            raise TaskNotFound(task_id)
        return Task.model_validate(from_item(item))

    def complete_task(self, task_id: str, *, by: str, at: datetime, note: str | None) -> Task:
        task = self.get_task(task_id)
        if task.task_status is TaskStatus.DONE:
            raise TaskAlreadyDone(task_id)
        entry = TimelineEntry(
            at=at, kind="callback_done", actor=by, detail={"task_id": task_id, "note": note}
        )
        try:
            transact(self.ddb, complete_task_items(self.tickets_table, task, entry), _duplicate)
        except _Exists as exc:
            raise TaskAlreadyDone(task_id) from exc
        return task.model_copy(
            update={"task_status": TaskStatus.DONE, "done_at": at, "done_by": by, "note": note}
        )


class _Exists(Exception):
    """The task already exists (add) or is no longer open (complete)."""


def _duplicate(cancelled: Cancelled) -> Exception:
    """A failed condition, or a conflict with a concurrent write of the same task: either way
    another request is doing (or did) the same thing."""
    return _Exists(cancelled.reason)
