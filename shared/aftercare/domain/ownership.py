"""Devices owned by customers: claim with the code printed on the device, transfer or release,
and the owner's view of their devices.

Rules:
- a claim names a provisioned device (serial or thing) and its claim code; the code is compared
  as a hash; wrong codes are counted per device and at the policy's limit the device locks;
- a claim is one conditional transaction (claim marked used, registry owner set, the customer's
  list updated): of two customers racing for one device exactly one wins, the other is told
  `already_claimed`;
- warranty starts at the first claim (activation) and lasts the model's months (policy data);
  a transfer or a re-claim after a release keeps it;
- a transfer moves the registry's owner: from then on the old owner's device routes answer 404
  and faults open tickets for the new owner; tickets keep the customer they were opened for, so
  each owner keeps their own history and sees only their own;
- right after a transfer or release, the old owner's active tickets on the device that no visit
  holds are cancelled `ownership_transferred` (parts released, the open-fault lock freed), so
  the same fault code reported again opens a ticket for the new owner (`domain/handover.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from calendar import monthrange
from datetime import UTC, date, datetime
from functools import cache
from string import Template
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.access import Caller
from aftercare.domain.handover import TicketHandover, close_on_handover
from aftercare.domain.health import DeviceHealth
from aftercare.domain.maintenance import Action, MaintenanceRules, title_values
from aftercare.domain.ports import TicketReader
from aftercare.domain.ports.health import HealthReader
from aftercare.domain.ports.ownership import (
    ClaimConflict,
    ClaimState,
    OwnershipStore,
    UnknownCustomer,
)
from aftercare.domain.tickets import Ticket
from aftercare.models.ownership import (
    ClaimedDevice,
    DeviceAdvice,
    MyDevice,
    OpenTicketRef,
    TransferOutcome,
    WarrantyState,
)


class ClaimPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    max_wrong_codes: PositiveInt
    release_code_alphabet: Annotated[str, Field(min_length=16)]
    release_code_length: Annotated[int, Field(ge=8, le=32)]


class WarrantyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    default: PositiveInt
    models: dict[str, PositiveInt] = Field(default_factory=dict)

    def months_for(self, model: str) -> int:
        return self.models.get(model, self.default)


class OwnershipPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    version: int
    claim: ClaimPolicy
    warranty_months: WarrantyPolicy


@cache
def load_ownership_policy() -> OwnershipPolicy:
    """`data/ownership.yaml` as shipped with this build."""
    return OwnershipPolicy.model_validate(load(DATA_FOLDER, "ownership.yaml"))


# --------------------------------------------------------------------------- errors


class ClaimNotFound(LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no claimable device {what}")


class AlreadyClaimed(Exception):
    def __init__(self, serial: str) -> None:
        super().__init__(f"device {serial} is already registered to a customer")


class ClaimLocked(Exception):
    def __init__(self, serial: str) -> None:
        super().__init__(f"device {serial} is locked after too many wrong claim codes")


class WrongClaimCode(Exception):
    def __init__(self, serial: str, remaining: int) -> None:
        super().__init__(
            f"the claim code does not match device {serial}; {remaining} attempts left"
        )
        self.remaining = remaining


class OwnedDeviceNotFound(LookupError):
    """Not a device of the caller (or none at all): both read as not found."""

    def __init__(self, thing: str) -> None:
        super().__init__(f"device {thing} not found")


class SameOwner(ValueError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"the device already belongs to {customer_id}")


# --------------------------------------------------------------------------- rules


def code_hash(serial: str, code: str) -> str:
    """How a claim code is stored and compared: never in clear, case-insensitive."""
    return hashlib.sha256(f"{serial}:{code.strip().upper()}".encode()).hexdigest()


def code_matches(state: ClaimState, code: str) -> bool:
    return hmac.compare_digest(state.code_hash, code_hash(state.serial, code))


def add_months(start: date, months: int) -> date:
    """`start` plus whole calendar months (the 31st becomes the month's last day)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, monthrange(year, month)[1]))


def warranty_of(state: ClaimState, policy: OwnershipPolicy, today: date) -> tuple[date, date]:
    """(activated_at, warranty_until): the first claim's, or starting today."""
    if state.activated_at and state.warranty_until:
        return state.activated_at, state.warranty_until
    return today, add_months(today, policy.warranty_months.months_for(state.model))


def new_release_code(policy: OwnershipPolicy) -> str:
    alphabet = policy.claim.release_code_alphabet
    return "".join(secrets.choice(alphabet) for _ in range(policy.claim.release_code_length))


def claimable_again(device: dict[str, Any], code: str) -> ClaimState:
    """The claims-list entry of a released device: a new code, no owner, its warranty kept."""
    serial = str(device["serial"])
    return ClaimState(
        serial=serial,
        thing=str(device["thing"]),
        model=str(device["model"]),
        region=str(device["region"]),
        firmware=str(device.get("firmware", "")),
        code_hash=code_hash(serial, code),
        activated_at=date.fromisoformat(str(device["activated_at"])),
        warranty_until=date.fromisoformat(str(device["warranty_until"])),
    )


def registry_item(
    state: ClaimState, customer_id: str, activated: date, until: date
) -> dict[str, Any]:
    """The DevicesTable item a claim writes (the registry's shape, `DeviceRecord`)."""
    return {
        "thing": state.thing,
        "serial": state.serial,
        "model": state.model,
        "customer_id": customer_id,
        "region": state.region,
        "activated_at": activated.isoformat(),
        "warranty_until": until.isoformat(),
        "firmware": state.firmware,
    }


# --------------------------------------------------------------------------- use cases


class Ownership:
    """Claim, transfer, release and list a customer's devices."""

    def __init__(
        self,
        *,
        store: OwnershipStore,
        tickets: TicketReader,
        health: HealthReader,
        rules: MaintenanceRules,
        policy: OwnershipPolicy,
        handover: TicketHandover,
    ) -> None:
        self.store = store
        self.tickets = tickets
        self.handover = handover
        self.health = health
        self.rules = rules
        self.policy = policy

    def claim(
        self, caller: Caller, *, serial: str | None, thing: str | None, code: str, now: datetime
    ) -> ClaimedDevice:
        customer_id = caller.require_customer("claim it")
        state = self.store.claim_state(serial=serial, thing=thing)
        if state is None:
            raise ClaimNotFound(serial or thing or "")
        limit = self.policy.claim.max_wrong_codes
        if state.claimed:
            raise AlreadyClaimed(state.serial)
        if state.wrong_codes >= limit:
            raise ClaimLocked(state.serial)
        if not code_matches(state, code):
            try:
                count = self.store.count_wrong_code(state.serial, limit=limit)
            except ClaimConflict as exc:
                raise self._why_not(state.serial) from exc
            if count >= limit:
                raise ClaimLocked(state.serial)
            raise WrongClaimCode(state.serial, limit - count)
        activated, until = warranty_of(state, self.policy, now.date())
        try:
            device = registry_item(state, customer_id, activated, until)
            self.store.claim(state, device, customer_id, now, limit=limit)
        except ClaimConflict as exc:
            raise self._why_not(state.serial) from exc
        return ClaimedDevice(
            thing=state.thing,
            serial=state.serial,
            model=state.model,
            customer_id=customer_id,
            activated_at=activated,
            warranty_until=until,
            claimed_at=now,
        )

    def _why_not(self, serial: str) -> Exception:
        """What beat this claim: another claim (the usual race) or the lock."""
        state = self.store.claim_state(serial=serial)
        if state is not None and state.wrong_codes >= self.policy.claim.max_wrong_codes:
            return ClaimLocked(serial)
        return AlreadyClaimed(serial)

    def _owned(self, customer_id: str, thing: str) -> dict[str, Any]:
        device = self.store.device(thing)
        if device is None or device.get("customer_id") != customer_id:
            raise OwnedDeviceNotFound(thing)
        return device

    def transfer(
        self,
        caller: Caller,
        thing: str,
        *,
        to_customer: str | None,
        now: datetime,
        to_email: str | None = None,
    ) -> TransferOutcome:
        """To another customer (`to_customer`, or the one whose e-mail is `to_email`) or, when
        neither, released with a new claim code."""
        customer_id = caller.require_customer("transfer it")
        device = self._owned(customer_id, thing)
        if to_email is not None:
            to_customer = self.store.customer_by_email(to_email.strip().lower())
            if to_customer is None:
                raise UnknownCustomer(to_email)
        if to_customer == customer_id:
            raise SameOwner(customer_id)
        claim = self.store.claim_state(thing=thing)
        code = None
        if to_customer is not None:
            self.store.transfer(device, claim, to_customer, now)
        else:
            code = new_release_code(self.policy)
            self.store.release(device, claimable_again(device, code), now)
        handed = close_on_handover(self.handover, thing, customer_id, actor=caller.actor, now=now)
        return TransferOutcome(
            thing=thing,
            from_customer=customer_id,
            to_customer=to_customer,
            claim_code=code,
            transferred_at=now,
            closed_tickets=handed.closed,
            kept_tickets=handed.kept,
        )

    def my_devices(self, caller: Caller, now: datetime) -> list[MyDevice]:
        customer_id = caller.require_customer("list its devices")
        devices = sorted(self.store.devices_of(customer_id), key=lambda d: str(d["thing"]))
        healths = self.health.healths([str(d["thing"]) for d in devices]) if devices else {}
        return [
            my_device(
                d,
                self.tickets.list_tickets(thing=str(d["thing"])),
                customer_id,
                now,
                health=healths.get(str(d["thing"])),
                rules=self.rules,
            )
            for d in devices
        ]


def my_device(
    device: dict[str, Any],
    tickets: list[Ticket],
    customer_id: str,
    now: datetime,
    *,
    health: DeviceHealth | None = None,
    rules: MaintenanceRules | None = None,
) -> MyDevice:
    """One device as its owner sees it: only tickets opened for them (not a previous owner's),
    and the advice its telemetry gave that still holds (given to them, not a previous owner)."""
    mine = [t for t in tickets if t.customer_id == customer_id]
    heard = [t.last_seen for t in mine]
    if device.get("last_seen_at"):
        heard.append(datetime.fromisoformat(str(device["last_seen_at"])))
    if health is not None:
        heard.append(health.last_seen)
    advice = (
        standing_advice(health, rules)
        if health is not None and rules is not None and health.customer_id == customer_id
        else []
    )
    until = date.fromisoformat(str(device["warranty_until"]))
    activated = device.get("activated_at")
    return MyDevice(
        thing=str(device["thing"]),
        serial=str(device.get("serial", "")),
        model=str(device.get("model", "")),
        customer_id=customer_id,
        region=str(device.get("region", "")),
        activated_at=date.fromisoformat(str(activated)) if activated else None,
        warranty=WarrantyState(in_warranty=now.date() <= until, until=until),
        last_seen=max(heard, default=None),
        open_tickets=[
            OpenTicketRef(ticket_id=t.ticket_id, fault_code=t.fault_code, status=t.status.value)
            for t in mine
            if t.active
        ],
        advice=advice,
    )


def standing_advice(health: DeviceHealth, rules: MaintenanceRules) -> list[DeviceAdvice]:
    """The advice rules that fired for this device (the health item remembers when) and whose
    finding still holds on its latest health; plus "offline" while it is silent."""
    advice = []
    for rule in rules.rules_for(health.model):
        finding = rule.finding(health)
        if rule.action is not Action.ADVISE or rule.id not in health.advised or finding is None:
            continue
        part = rules.part(rule.part) if rule.part else None
        values = title_values(finding, part)
        advice.append(
            DeviceAdvice(
                rule=rule.id,
                title_en=Template(rule.title_en or "$finding").safe_substitute(values),
                title_zh=Template(rule.title_zh or "$finding").safe_substitute(values),
                part=part.sku if part else None,
                price=part.unit_price if part else None,
                currency=part.currency if part else None,
                issued_at=health.advised_at.get(rule.id) or _period_start(health.advised[rule.id]),
            )
        )
    if health.offline_since is not None:
        values = {"last_seen": health.last_seen.isoformat()}
        advice.append(
            DeviceAdvice(
                rule="offline",
                title_en=Template(rules.offline.title_en).safe_substitute(values),
                title_zh=Template(rules.offline.title_zh).safe_substitute(values),
                issued_at=health.offline_since,
            )
        )
    return advice


def _period_start(period: str) -> datetime:
    """When a period (`period_of`) began: the issue time of advice recorded before its time was."""
    return datetime.combine(date.fromisoformat(period.split("/", 1)[0]), datetime.min.time(), UTC)


def reissue_claim_code(store: OwnershipStore, serial: str, policy: OwnershipPolicy) -> str:
    """Support's answer to a locked (or lost) claim code: a new code for an unclaimed device,
    its wrong codes reset. Returns the code, which is stored only as its hash."""
    state = store.claim_state(serial=serial)
    if state is None:
        raise ClaimNotFound(serial)
    if state.claimed:
        raise AlreadyClaimed(serial)
    code = new_release_code(policy)
    try:
        store.reissue(serial, code_hash(serial, code))
    except ClaimConflict as exc:
        raise AlreadyClaimed(serial) from exc
    return code
