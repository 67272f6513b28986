"""Device ownership on the API: claim a device, transfer or release it, list my devices.

Inbound bodies are strict (`extra="forbid"`); views are what `GET /me/devices` and the claim and
transfer routes answer.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from aftercare.models.ids import ThingName

Serial = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{4,64}$")]
ClaimCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{4,64}$")]
CustomerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$", max_length=254)
]


class ClaimRequest(BaseModel):
    """Register a device to the calling customer: its serial (or thing name) and the claim code
    printed on it."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    serial: Serial | None = None
    thing: ThingName | None = None
    code: ClaimCode

    @model_validator(mode="after")
    def _one_device(self) -> ClaimRequest:
        if (self.serial is None) == (self.thing is None):
            raise ValueError("give exactly one of serial or thing")
        return self


class TransferRequest(BaseModel):
    """Hand a device over: to another customer (`to_customer`, or their contact e-mail
    `to_email`), or `release` it with a new claim code for whoever gets it next."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    to_customer: CustomerId | None = None
    to_email: Email | None = None
    release: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> TransferRequest:
        targets = [self.to_customer is not None, self.to_email is not None, self.release]
        if sum(targets) != 1:
            raise ValueError("give exactly one of to_customer, to_email or release: true")
        return self


class ClaimedDevice(BaseModel):
    """A device just claimed: whose it is and the warranty its activation started."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    serial: str
    model: str
    customer_id: str
    activated_at: date
    warranty_until: date
    claimed_at: AwareDatetime


class TransferOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    from_customer: str
    to_customer: str | None = Field(default=None, description="None when released")
    claim_code: str | None = Field(
        default=None, description="the new claim code of a released device (shown once)"
    )
    transferred_at: AwareDatetime
    closed_tickets: list[str] = Field(
        default_factory=list,
        description=(
            "the old owner's open tickets on the device, cancelled `ownership_transferred` "
            "(parts released; they stay in the old owner's history)"
        ),
    )
    kept_tickets: list[str] = Field(
        default_factory=list,
        description="the old owner's tickets left to a visit that is booked or under way",
    )


class WarrantyState(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    in_warranty: bool
    until: date


class OpenTicketRef(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    fault_code: str
    status: str


class DeviceAdvice(BaseModel):
    """One maintenance advice the device's telemetry gave its owner, still standing."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    rule: str = Field(description="the maintenance rule (`offline` for a silent device)")
    title_en: str
    title_zh: str
    part: str | None = Field(default=None, description="the suggested part's SKU")
    price: float | None = Field(default=None, description="the part's unit price")
    currency: str | None = None
    issued_at: AwareDatetime


class MyDevice(BaseModel):
    """One of the caller's devices, as `GET /me/devices` lists it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    serial: str
    model: str
    customer_id: str
    region: str
    activated_at: date | None
    warranty: WarrantyState
    last_seen: AwareDatetime | None = Field(
        default=None,
        description="newest telemetry report, fault report or diagnostics answer from the device",
    )
    open_tickets: list[OpenTicketRef]
    advice: list[DeviceAdvice] = Field(
        default_factory=list,
        description="maintenance advice from the telemetry whose finding still holds",
    )
