"""`aftercare advice list`: the maintenance advice that still stands, one row per advice.

    aftercare advice list --json              a logged-in customer's devices (GET /me/devices)
    aftercare advice list --thing T --json    one device, for staff (straight to the stack's
                                              tables, as `devices health`)

Both build the rows from the same rule (`aftercare.domain.ownership.standing_advice`): the
customer's through the Owners API, which already answers each device's advice with one batch
read (no route of its own), staff's from the device's health item.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from aftercare.adapters.health import DynamoHealthStore
from aftercare.domain.maintenance import load_maintenance_rules
from aftercare.domain.ownership import standing_advice

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import required_client

ADVICE_KEYS = ("rule", "title_en", "title_zh", "part", "price", "currency", "issued_at")
COLUMNS = ["thing", "rule", "title_en", "part", "price", "currency", "issued_at"]

advice_app = typer.Typer(help="Maintenance advice from device telemetry.", no_args_is_help=True)


def advice_rows(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`GET /me/devices` (or devices shaped like it) as one row per advice, newest first."""
    rows = [
        {"thing": d["thing"], "model": d.get("model")} | {k: a.get(k) for k in ADVICE_KEYS}
        for d in devices
        for a in d.get("advice", [])
    ]
    return sorted(rows, key=lambda r: str(r["issued_at"]), reverse=True)


def _device_advice(thing: str, opts: StackOptions) -> list[dict[str, Any]]:
    target = opts.target()
    store = DynamoHealthStore(
        devices_table=target.resource("DevicesTable"),
        health_table=target.resource("DeviceHealthTable"),
        ddb=target.client("dynamodb"),
    )
    view = store.read([thing]).get(thing)
    if view is None:
        raise CliError(f"no device {thing}")
    advice = [] if view.health is None else standing_advice(view.health, load_maintenance_rules())
    return [
        {"thing": thing, "model": view.model, "advice": [a.model_dump(mode="json") for a in advice]}
    ]


@advice_app.command("list")
@stack_command
def advice_list(
    thing: Annotated[
        str | None, typer.Option(help="one device (staff); without it, the logged-in customer's")
    ] = None,
    *,
    opts: StackOptions,
) -> None:
    """The maintenance advice that still stands: the rule, its message, the part and price."""
    devices = _device_advice(thing, opts) if thing else required_client(opts).get("/me/devices")
    emit(advice_rows(devices), opts.json, COLUMNS)
