"""`aftercare smoke`: one fault through the deployed (or local) stack, hop by hop.

Hops, each timed:
1. ``device_registered`` — the test device is in DevicesTable (provision it first);
2. ``publish_fault`` — a `FaultReport` with code `SMOKE-TEST` and a fresh `smoke-…` fault id,
   published on the device's fault topic through the IoT data plane (the account's endpoint,
   or the local iot-data stand-in), as if the device had sent it;
3. ``ticket_opened`` — the ticket holding that fault id, read from TicketsTable;
4. ``notification_recorded`` — a `ticket_opened` notification attempt for it in
   NotificationsTable (sent, failed, deferred or suppressed: the notifier ran);
5. ``api_ticket`` — the ticket through the support API with a staff token (Cognito + API);
6. ``diagnostics`` — a `sensor_snapshot` round trip to the device through the API. When AWS IoT
   says the thing is disconnected (fleet indexing with connectivity on), the hop is skipped
   without asking; when connectivity is unknown (locally, or indexing off), a request that gets
   no answer within `--diag-timeout` makes the hop "skipped" (ok) — unless `--require-device`,
   which is what to use with a test device that runs an agent;
7. ``cleanup`` — the smoke ticket, once found, is cancelled (releasing any held parts), even
   after a failed hop.

`SMOKE-TEST` is not a catalog code, so the ticket is *unclassified*: it reserves no parts and
triggers no automatic diagnostics; being cancelled, it counts neither as a repair nor as a
repeat. The smoke customer (`c-smoke`, from `aftercare admin seed`) is notified by app push only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.registry import DeviceRegistry
from aftercare.domain.lifecycle import change_status
from aftercare.domain.ports import ConcurrentUpdate, TicketNotFound
from aftercare.domain.tickets import InvalidTransition
from aftercare.models.payloads import FaultReport, Severity
from aftercare.models.tickets import TicketStatus
from botocore.exceptions import BotoCoreError, ClientError

from infra.cli_core import CliError, StackOptions
from infra.cli_session import ApiClient, api_client_for, authenticate
from infra.local.provision_api import LOCAL_PASSWORD
from infra.stores import notification_store_of, registry_of, store_of
from infra.target import Target, TargetError

SMOKE_CODE: Final = "SMOKE-TEST"
SMOKE_ROUTINE: Final = "sensor_snapshot"
SMOKE_ACTOR: Final = "aftercare-smoke"
DEFAULT_THING: Final = "smoke-device-1"
POLL_S: Final = 0.5
HOP_FAILURES = (
    CliError,
    TargetError,
    ClientError,
    BotoCoreError,
    TicketNotFound,
    InvalidTransition,
    ConcurrentUpdate,
    OSError,
)
T = TypeVar("T")


class HopFailed(RuntimeError):
    """A hop did not get what it waited for (the message says what)."""


@dataclass
class Hop:
    name: str
    ok: bool
    ms: int
    detail: str | None = None
    skipped: str | None = None

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "ms": self.ms, "ok": self.ok}
        row |= {k: v for k, v in (("detail", self.detail), ("skipped", self.skipped)) if v}
        return row


@dataclass
class SmokeRun:
    """The hops so far; `run` times one and stops the smoke at the first failure."""

    hops: list[Hop] = field(default_factory=list)

    def run(self, name: str, step: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            value = step()
        except (HopFailed, *HOP_FAILURES) as exc:
            self.hops.append(
                Hop(name, False, _ms_since(started), detail=" ".join(str(exc).split()))
            )
            raise HopFailed(f"{name}: {exc}") from exc
        skipped = value if isinstance(value, Skipped) else None
        self.hops.append(
            Hop(name, True, _ms_since(started), skipped=skipped.reason if skipped else None)
        )
        return value

    @property
    def ok(self) -> bool:
        return all(hop.ok for hop in self.hops)

    @property
    def first_failure(self) -> Hop | None:
        return next((hop for hop in self.hops if not hop.ok), None)


@dataclass(frozen=True)
class Skipped:
    reason: str


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def smoke_fault_id() -> str:
    """A fault id that says what it is and is new on every run."""
    return f"smoke-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


def smoke_report(thing: str, fault_id: str, now: datetime) -> FaultReport:
    return FaultReport(
        fault_id=fault_id,
        code=SMOKE_CODE,
        severity=Severity.INFO,
        occurred_at=now,
        firmware="smoke",
        message="aftercare smoke test: safe to ignore, cancelled automatically",
        thing=thing,
    )


def poll(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """`probe()` until it returns something, or HopFailed naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise HopFailed(f"no {what} after {timeout:g}s")
        time.sleep(POLL_S)


@dataclass
class Smoke:
    """One smoke run against `target`."""

    target: Target
    thing: str
    timeout: float
    diag_timeout: int
    require_device: bool
    staff: Callable[[], ApiClient]
    fault_id: str = field(default_factory=smoke_fault_id)
    ticket_id: str | None = None
    report: SmokeRun = field(default_factory=SmokeRun)

    @property
    def store(self) -> DynamoTicketStore:
        return store_of(self.target)

    @property
    def registry(self) -> DeviceRegistry:
        return registry_of(self.target)

    def execute(self) -> SmokeRun:
        try:
            with contextlib.suppress(HopFailed):
                self._hops()
        finally:
            if self.ticket_id is not None:
                with contextlib.suppress(HopFailed):
                    self.report.run("cleanup", self._cleanup)
        return self.report

    def _hops(self) -> None:
        self.report.run("device_registered", self._device_registered)
        self.report.run("publish_fault", self._publish_fault)
        self.ticket_id = self.report.run("ticket_opened", self._ticket_opened)
        self.report.run("notification_recorded", self._notification_recorded)
        api = self.report.run("api_ticket", self._api_ticket)
        self.report.run("diagnostics", lambda: self._diagnostics(api))

    def _device_registered(self) -> str:
        if self.registry.get_device(self.thing) is None:
            raise HopFailed(
                f"device {self.thing} is not registered: `aftercare devices provision` it first"
            )
        return self.thing

    def _publish_fault(self) -> None:
        report = smoke_report(self.thing, self.fault_id, datetime.now(UTC))
        self.target.iot_data_client().publish(
            topic=f"dt/aftercare/{self.thing}/fault", qos=1, payload=report.to_json_bytes()
        )

    def _ticket_opened(self) -> str:
        def probe() -> str | None:
            for ticket in self.store.list_tickets(thing=self.thing):
                if ticket.fault_code != SMOKE_CODE or not ticket.active:
                    continue
                detail = self.store.get_ticket(ticket.ticket_id)
                if any(o.fault_id == self.fault_id for o in detail.occurrences):
                    return ticket.ticket_id
            return None

        return poll(probe, self.timeout, f"ticket holding fault {self.fault_id}")

    def _notification_recorded(self) -> str:
        store = notification_store_of(self.target)

        def probe() -> str | None:
            attempts = store.list_attempts(ticket_id=self.ticket_id)
            opened = [a for a in attempts if a.get("kind") == "ticket_opened"]
            return str(opened[0].get("status")) if opened else None

        return poll(probe, self.timeout, f"notification attempt for {self.ticket_id}")

    def _api_ticket(self) -> ApiClient:
        api = self.staff()
        view = api.get(f"/tickets/{quote(str(self.ticket_id), safe='')}")
        if view.get("ticket_id") != self.ticket_id:
            raise HopFailed(f"the API answered another ticket: {view.get('ticket_id')}")
        return api

    def _connected(self) -> bool | None:
        """AWS IoT's word on the thing's connection (None: unknown, e.g. locally)."""
        if not self.target.is_aws:
            return None
        try:
            answer = self.target.client("iot").get_thing_connectivity_data(thingName=self.thing)
        except (ClientError, BotoCoreError):
            return None
        return bool(answer.get("connected"))

    def _diagnostics(self, api: ApiClient) -> Skipped | str:
        connected = self._connected()
        if connected is False and not self.require_device:
            return Skipped(f"AWS IoT says {self.thing} is not connected")
        record = api.post(
            f"/tickets/{quote(str(self.ticket_id), safe='')}/diagnostics",
            {"routine": SMOKE_ROUTINE, "timeout_s": self.diag_timeout},
        )
        path = f"/diagnostics/{quote(record['request_id'], safe='')}"

        def probe() -> dict[str, Any] | None:
            current = dict(api.get(path))
            return current if current["status"] != "pending" else None

        try:
            answered = poll(probe, self.diag_timeout + 5, f"answer from {self.thing}")
        except HopFailed:
            answered = {"status": "pending"}
        if answered["status"] == "completed":
            return f"{record['request_id']}: {answered.get('result', {}).get('status')}"
        if connected is None and not self.require_device:
            return Skipped(f"no answer from {self.thing} in {self.diag_timeout}s: not connected?")
        raise HopFailed(f"diagnostics {record['request_id']} ended {answered['status']}")

    def _cleanup(self) -> None:
        ticket = self.store.get_ticket(str(self.ticket_id)).ticket
        if ticket.active:
            change_status(
                self.store,
                ticket.ticket_id,
                TicketStatus.CANCELLED,
                actor=SMOKE_ACTOR,
                reason=f"smoke test {self.fault_id}",
                now=datetime.now(UTC),
            )


def staff_client(opts: StackOptions, user: str | None, target: Target) -> Callable[[], ApiClient]:
    """How the smoke gets a staff token: `--user` (password from $AFTERCARE_PASSWORD; locally
    the seeded users' one), locally the seeded engineer, else the stored `aftercare login`."""

    def client() -> ApiClient:
        staff = user or (None if target.is_aws else target.state.get("users", {}).get("engineer"))
        if staff:
            password = os.environ.get("AFTERCARE_PASSWORD") or (
                None if target.is_aws else LOCAL_PASSWORD
            )
            if password is None:
                raise HopFailed(f"set AFTERCARE_PASSWORD for {staff}")
            session = authenticate(target, staff, password)
            return ApiClient(target.api_url, str(session["id_token"]))
        api = api_client_for(opts)
        if api is None:
            raise HopFailed(
                f"no staff login for {target.name}: `aftercare login --aws --stage {opts.stage}"
                " --user ENGINEER`, or pass --user with AFTERCARE_PASSWORD"
            )
        return api

    return client
