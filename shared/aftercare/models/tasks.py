"""Tasks for support staff that tickets create (a VIP customer's callback)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from aftercare.models.tickets import Channel


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Task(BaseModel):
    """One thing a person must do for a ticket, e.g. call the customer back by `due_at`."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    task_id: str
    kind: str
    ticket_id: str
    customer_id: str
    thing: str
    channel: Channel
    preferred_contact: str | None = None
    due_at: AwareDatetime
    created_at: AwareDatetime
    task_status: TaskStatus = TaskStatus.OPEN
    done_at: AwareDatetime | None = None
    done_by: str | None = None
    note: str | None = None
