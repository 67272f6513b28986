"""Ports of device ownership: the claimable-device list, the registry's owner, and the
customer's device list, changed together."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict


class ClaimState(BaseModel):
    """A provisioned device as the claims list holds it (the code only as its hash)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    serial: str
    thing: str
    model: str
    region: str
    firmware: str
    code_hash: str
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None
    wrong_codes: int = 0
    activated_at: date | None = None  # set by the first claim, kept through transfers
    warranty_until: date | None = None

    @property
    def claimed(self) -> bool:
        return self.claimed_by is not None


class ClaimConflict(Exception):
    """Someone else's claim went first, or the device locked meanwhile."""


class UnknownCustomer(LookupError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no customer {customer_id}")
        self.customer_id = customer_id


class NotTheOwner(Exception):
    """The device's owner changed since it was read (or never was the caller)."""


class OwnershipStore(Protocol):
    """Claims, the registry's owner and the customers' device lists, kept in step by single
    conditional transactions."""

    def claim_state(
        self, *, serial: str | None = None, thing: str | None = None
    ) -> ClaimState | None:
        """The claims-list entry of a device, by serial or by thing name."""
        ...

    def count_wrong_code(self, serial: str, *, limit: int) -> int:
        """Count one wrong code (never past `limit`); returns the count now."""
        ...

    def claim(
        self,
        state: ClaimState,
        device: dict[str, Any],
        customer_id: str,
        now: datetime,
        *,
        limit: int,
    ) -> None:
        """Mark the claim used, register `device` to the customer and add it to their list,
        in one transaction: raises ClaimConflict (claimed or locked meanwhile) or
        UnknownCustomer. Refused too once the device has `limit` wrong codes."""
        ...

    def device(self, thing: str) -> dict[str, Any] | None:
        """The registry item of a device (strongly consistent), owned or not."""
        ...

    def transfer(
        self, device: dict[str, Any], claim: ClaimState | None, new: str, now: datetime
    ) -> None:
        """Move the device to customer `new` (must exist: UnknownCustomer) if its owner is still
        `device["customer_id"]` (NotTheOwner); its claim entry, if any, follows."""
        ...

    def release(self, device: dict[str, Any], claimable: ClaimState, now: datetime) -> None:
        """Unregister the device from its owner (NotTheOwner if that changed) and make it
        claimable again as `claimable` (a new code, the warranty kept)."""
        ...

    def reissue(self, serial: str, code_hash: str) -> None:
        """Give an unclaimed device a new code and forget its wrong codes (ClaimConflict when
        it is claimed or unknown)."""
        ...

    def customer_by_email(self, email: str) -> str | None:
        """The id of the customer whose contact e-mail this is (lower case), if one."""
        ...

    def devices_of(self, customer_id: str) -> list[dict[str, Any]]:
        """The registry items the customer owns now (strongly consistent)."""
        ...
