"""Bodies of the routes through which people raise tickets, classify them and work the tasks
they create (the OpenAPI document is generated from these)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from aftercare.models.guides import GuideLanguage, GuideView
from aftercare.models.ids import FaultCode, ThingName
from aftercare.models.severity import Severity
from aftercare.models.tasks import Task
from aftercare.models.tickets import Channel, TicketRecord

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
CustomerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class PersonChannel(StrEnum):
    """The channels a person raises a ticket through (`device` is the device's own)."""

    APP = "app"
    WEB = "web"
    PHONE = "phone"
    CHAT = "chat"
    EMAIL = "email"
    ONSITE = "onsite"

    @property
    def channel(self) -> Channel:
        return Channel(self.value)


class RaiseTicket(BaseModel):
    """A customer's (or an agent's, for a customer) report of a problem with a device."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    device: ThingName = Field(description="the device's thing name")
    symptom: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description=(
            "a symptom code from `GET /symptoms`, or free text (an unclassified ticket for "
            "triage); code-like text that is not in the catalog is a 422 `unknown_symptom`"
        )
    )
    # symptom text + description stay within a report's message (1024 characters)
    description: Annotated[str, StringConstraints(max_length=800)] | None = None
    channel: PersonChannel = Field(description="customers: app or web; agents: any")
    preferred_contact: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = (
        Field(default=None, description="how to reach the customer, e.g. a phone number")
    )
    for_customer: CustomerId | None = Field(
        default=None, description="agents: the customer they act for (must own the device)"
    )
    lang: GuideLanguage = Field(
        default=GuideLanguage.EN, description="the language of the guide offered in the answer"
    )


class RaiseOutcomeName(StrEnum):
    OPENED = "opened"
    ALREADY_BEING_HANDLED = "already_being_handled"
    DUPLICATE_REQUEST = "duplicate_request"


class RaisedTicket(BaseModel):
    """What became of a raised ticket: `opened` (201), `already_being_handled` (the device's
    active ticket for that code got the report as an occurrence) or `duplicate_request` (a retry
    with the same Idempotency-Key: the first answer's ticket)."""

    model_config = ConfigDict(defer_build=True)

    outcome: RaiseOutcomeName
    ticket_id: str
    ticket: TicketRecord
    callback: Task | None = Field(default=None, description="the callback task, if one is due")
    guide: GuideView | None = Field(
        default=None,
        description=(
            "the troubleshooting guide for the ticket's code and model, when there is one; "
            "`self_service` says whether `POST /tickets/{id}/self-service` may confirm it"
        ),
    )


class Symptom(BaseModel):
    """One entry of the symptom list customers choose from."""

    model_config = ConfigDict(defer_build=True)

    code: str
    name: str
    category: str
    severity: Severity
    models: list[str]


class ClassifyTicket(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    code: FaultCode = Field(description="a catalog code (`GET /symptoms`)")


class CompleteTask(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    note: Annotated[str, StringConstraints(max_length=500)] | None = None
