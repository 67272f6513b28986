"""Staff tasks that tickets create (callbacks), stored beside the tickets."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from aftercare.models.tasks import Task


class TaskNotFound(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class TaskAlreadyDone(Exception):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} is already done")
        self.task_id = task_id


class TaskStore(Protocol):
    """Tasks are opened with their ticket (`NewTicketPlan.task`, one transaction)."""

    def list_tasks(self, status: str | None = None) -> list[Task]:
        """Tasks, oldest due first, optionally only those with `task_status == status`."""
        ...

    def complete_task(self, task_id: str, *, by: str, at: datetime, note: str | None) -> Task:
        """Mark an open task done with a timeline entry on its ticket, atomically.
        Raises TaskNotFound or TaskAlreadyDone."""
        ...
