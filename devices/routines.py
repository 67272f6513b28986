"""Diagnostics routines a device runs on request, and the request -> result step around them.

A routine takes the device state and the request's ``params`` and returns a ``RoutineOutcome``;
it never reads a clock or randomness, so its result is a function of the state alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from aftercare.models.diagnostics import Routine as RoutineName
from aftercare.models.payloads import (
    DiagnosticsCancel,
    DiagnosticsRequest,
    DiagnosticsResult,
    DiagnosticStatus,
)
from pydantic import ValidationError

from devices.state import LOG_CAPACITY, DeviceState, component_of

LOGGER = logging.getLogger(__name__)

DEFAULT_LOG_LINES = 20


class RoutineParamsError(ValueError):
    """The request's ``params`` do not fit the routine; answered with status ``error``."""


@dataclass(frozen=True, slots=True)
class RoutineOutcome:
    """What a routine found, and whether it fixed the problem."""

    status: DiagnosticStatus
    findings: dict[str, Any] = field(default_factory=dict)
    remedied: bool = False


Routine = Callable[[DeviceState, dict[str, Any]], RoutineOutcome]


def self_test(state: DeviceState, params: dict[str, Any]) -> RoutineOutcome:
    """Check every component; fails while any fault is active."""
    faults = state.faults()
    faulty = {f.component for f in faults}
    checks = {c: "fault" if c in faulty else "ok" for c in state.components()}
    findings = {
        "checks": checks,
        "active_faults": [f.code for f in faults],
        "firmware": state.firmware,
    }
    status = DiagnosticStatus.FAILED if faults else DiagnosticStatus.PASSED
    return RoutineOutcome(status=status, findings=findings)


def sensor_snapshot(state: DeviceState, params: dict[str, Any]) -> RoutineOutcome:
    """Current readings, all or those named in ``params["sensors"]``; fails if one is missing."""
    wanted = params.get("sensors")
    with state.lock:
        readings = dict(sorted(state.readings.items()))
    if wanted is None:
        return RoutineOutcome(DiagnosticStatus.PASSED, {"readings": readings, "missing": []})
    if not isinstance(wanted, list) or not all(isinstance(name, str) for name in wanted):
        raise RoutineParamsError("params.sensors must be a list of sensor names")
    missing = sorted(name for name in set(wanted) if name not in readings)
    chosen = {name: readings[name] for name in sorted(set(wanted)) if name in readings}
    status = DiagnosticStatus.FAILED if missing else DiagnosticStatus.PASSED
    return RoutineOutcome(status, {"readings": chosen, "missing": missing})


def log_excerpt(state: DeviceState, params: dict[str, Any]) -> RoutineOutcome:
    """The newest ``params["lines"]`` log lines (default 20), optionally only those containing
    ``params["contains"]``."""
    lines = params.get("lines", DEFAULT_LOG_LINES)
    contains = params.get("contains")
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= LOG_CAPACITY:
        raise RoutineParamsError(f"params.lines must be an integer from 1 to {LOG_CAPACITY}")
    if contains is not None and not isinstance(contains, str):
        raise RoutineParamsError("params.contains must be a string")
    with state.lock:
        log = list(state.log)
    matching = [line for line in log if contains is None or contains in line]
    return RoutineOutcome(
        DiagnosticStatus.PASSED, {"lines": matching[-lines:], "total_lines": len(log)}
    )


def reset_component(state: DeviceState, params: dict[str, Any]) -> RoutineOutcome:
    """Reset a component (``params["component"]``, or the one of ``params["code"]``): clears its
    remotely fixable faults; passes and reports ``remedied`` only when none remain."""
    component = _component_param(params)
    with state.lock:
        faults = [f for f in state.faults() if f.component == component]
        cleared = [f.code for f in faults if f.remote_fixable]
        remaining = [f.code for f in faults if not f.remote_fixable]
        state.clear(cleared)
    findings: dict[str, Any] = {"component": component, "cleared": cleared, "remaining": remaining}
    if not faults:
        findings["note"] = "no active fault on this component"
    status = DiagnosticStatus.FAILED if remaining else DiagnosticStatus.PASSED
    return RoutineOutcome(status, findings, remedied=bool(cleared) and not remaining)


def _component_param(params: dict[str, Any]) -> str:
    component = params.get("component")
    code = params.get("code")
    if isinstance(component, str) and component:
        return component.lower()
    if isinstance(code, str) and code:
        return component_of(code)
    raise RoutineParamsError("params.component or params.code (a non-empty string) is required")


ROUTINES: Final[Mapping[str, Routine]] = MappingProxyType(
    {
        RoutineName.SELF_TEST.value: self_test,
        RoutineName.SENSOR_SNAPSHOT.value: sensor_snapshot,
        RoutineName.LOG_EXCERPT.value: log_excerpt,
        RoutineName.RESET_COMPONENT.value: reset_component,
    }
)


def parse_request(raw: bytes) -> DiagnosticsRequest | None:
    """The request in ``raw``, or None (logged) when it is not a valid ``DiagnosticsRequest``."""
    try:
        return DiagnosticsRequest.model_validate_json(raw)
    except ValidationError as exc:
        LOGGER.warning("ignoring invalid diagnostics request: %s", exc.errors(include_url=False))
        return None


def run_routine(
    state: DeviceState,
    request: DiagnosticsRequest,
    now: datetime,
    routines: Mapping[str, Routine] = ROUTINES,
) -> DiagnosticsResult:
    """Run the requested routine (``unsupported`` when unknown) and note it in the device log."""
    routine = routines.get(request.routine)
    if routine is None:
        supported = sorted(routines)
        outcome = RoutineOutcome(
            DiagnosticStatus.UNSUPPORTED, {"routine": request.routine, "supported": supported}
        )
    else:
        outcome = _run(routine, state, request)
    state.note(
        now,
        f"DIAG {request.routine} request={request.request_id} status={outcome.status.value}"
        f" remedied={outcome.remedied}",
    )
    return DiagnosticsResult(
        request_id=request.request_id,
        status=outcome.status,
        findings=outcome.findings,
        remedied=outcome.remedied,
        completed_at=now,
    )


def respond(
    state: DeviceState,
    raw: bytes,
    now: datetime,
    routines: Mapping[str, Routine] = ROUTINES,
) -> DiagnosticsResult | None:
    """Answer one raw request; None when it is invalid, has expired or was cancelled (a device
    ignores all three)."""
    request = parse_request(raw)
    if request is None:
        return None
    if request.expired(now):
        LOGGER.info(
            "ignoring expired diagnostics request %s (expired at %s)",
            request.request_id,
            request.expires_at.isoformat(),
        )
        return None
    if state.is_cancelled(request.request_id, now):
        LOGGER.info("ignoring cancelled diagnostics request %s", request.request_id)
        return None
    return run_routine(state, request, now, routines)


def accept_cancel(state: DeviceState, raw: bytes, now: datetime) -> DiagnosticsCancel | None:
    """Take one raw cancel into the state (a later copy of its request is then ignored); None
    when it is invalid or its request has expired anyway."""
    try:
        cancel = DiagnosticsCancel.model_validate_json(raw)
    except ValidationError as exc:
        LOGGER.warning("ignoring invalid diagnostics cancel: %s", exc.errors(include_url=False))
        return None
    if now >= cancel.expires_at:
        return None
    state.cancel_request(cancel.request_id, cancel.expires_at)
    state.note(now, f"DIAG cancelled request={cancel.request_id} reason={cancel.reason}")
    return cancel


def _run(routine: Routine, state: DeviceState, request: DiagnosticsRequest) -> RoutineOutcome:
    with state.lock:
        try:
            return routine(state, dict(request.params))
        except RoutineParamsError as exc:
            return RoutineOutcome(DiagnosticStatus.ERROR, {"error": str(exc)})
