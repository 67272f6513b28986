"""`aftercare devices health THING`: a device's folded telemetry and what the rules say now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aftercare.adapters.health import DynamoHealthStore
from aftercare.domain.health import trend_per_day
from aftercare.domain.maintenance import MaintenanceRules, due_for, load_maintenance_rules
from aftercare.domain.ports.health import DeviceView

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit


def health_row(view: DeviceView, rules: MaintenanceRules, now: datetime) -> dict[str, Any]:
    """The `--json` object: the health item's fields, the temperature trend, whether the
    device is within its heartbeat, and the rules that fire on it now (with the period each
    last fired in)."""
    row: dict[str, Any] = {
        "thing": view.thing,
        "model": view.model,
        "customer_id": view.customer_id,
        "reports": 0,
        "last_seen": None,
        "online": False,
    }
    health = view.health
    if health is None:
        return row
    row |= health.model_dump(mode="json", exclude={"daily_temp", "thing", "model"})
    row["daily_temp_c"] = {d.isoformat(): round(m, 2) for d, m in health.daily_means()}
    trend = trend_per_day(health.daily_means())
    row["temp_trend_c_per_day"] = None if trend is None else round(trend, 3)
    row["online"] = health.offline_since is None and now - health.last_seen <= rules.heartbeat(
        view.model
    )
    row["firing"] = [
        {"rule": d.rule_id, "action": d.action.value, "period": d.period, "finding": d.finding}
        for d in due_for(health, rules, now)
    ]
    return row


@stack_command
def devices_health(thing: str, *, opts: StackOptions) -> None:
    """A device's health from its telemetry: last seen, temperature EWMA, daily means and
    trend, latest counters, and the maintenance rules that fire on it now."""
    target = opts.target()
    store = DynamoHealthStore(
        devices_table=target.resource("DevicesTable"),
        health_table=target.resource("DeviceHealthTable"),
        ddb=target.client("dynamodb"),
    )
    view = store.read([thing]).get(thing)
    if view is None:
        raise CliError(f"no device {thing}")
    emit(health_row(view, load_maintenance_rules(), datetime.now(UTC)), opts.json)
