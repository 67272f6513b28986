"""`aftercare devices claim|transfer` and `devices list --mine`: a logged-in customer registers,
hands over and lists their devices (through the Owners API).

    aftercare devices claim [SERIAL] [--serial S | --thing T] --code C [--json]
    aftercare devices transfer THING (--to CUSTOMER|EMAIL | --release) [--json]
    aftercare devices list --mine --json
    aftercare devices reissue-code SERIAL [--json]      (operators, straight to the tables)
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from aftercare.domain.ownership import (
    AlreadyClaimed,
    ClaimNotFound,
    load_ownership_policy,
    reissue_claim_code,
)

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import required_client
from infra.stores import ownership_store_of

MINE_COLUMNS = [
    "thing",
    "serial",
    "model",
    "customer_id",
    "region",
    "warranty_until",
    "in_warranty",
    "last_seen",
    "open_tickets",
]


def my_device_row(device: dict[str, Any]) -> dict[str, Any]:
    """One of `GET /me/devices` as a `devices list` row: the contract's keys first."""
    warranty = device.get("warranty") or {}
    return {
        "thing": device["thing"],
        "serial": device["serial"],
        "model": device["model"],
        "customer_id": device.get("customer_id"),
        "region": device.get("region"),
        "warranty_until": warranty.get("until"),
        "in_warranty": warranty.get("in_warranty"),
        "activated_at": device.get("activated_at"),
        "last_seen": device.get("last_seen"),
        "open_tickets": device.get("open_tickets", []),
        "advice": device.get("advice", []),
    }


def my_devices(opts: StackOptions) -> None:
    """The logged-in customer's devices (`devices list --mine`)."""
    rows = [my_device_row(d) for d in required_client(opts).get("/me/devices")]
    emit(rows, opts.json, MINE_COLUMNS)


def devices_claim(
    serial_arg: Annotated[
        str | None, typer.Argument(metavar="SERIAL", show_default=False, help="the serial")
    ] = None,
    code: Annotated[str, typer.Option(help="the claim code printed on the device")] = "",
    serial: Annotated[str | None, typer.Option(help="the device's serial")] = None,
    thing: Annotated[str | None, typer.Option(help="or its thing name")] = None,
    *,
    opts: StackOptions,
) -> None:
    """Register a device to the logged-in customer with the code printed on it."""
    chosen = [v for v in (serial_arg, serial, thing) if v]
    if len(chosen) != 1 or not code:
        raise CliError("give one of SERIAL, --serial or --thing, and --code")
    body: dict[str, Any] = {"code": code}
    body["thing" if thing else "serial"] = chosen[0]
    claimed = required_client(opts).post("/devices/claim", body)
    if opts.json:
        emit(claimed, True)
        return
    print(
        f"{claimed['thing']} ({claimed['serial']}) is yours; warranty until "
        f"{claimed['warranty_until']}"
    )


def devices_transfer(
    thing: Annotated[str, typer.Argument(show_default=False)],
    to: Annotated[
        str | None, typer.Option("--to", help="the new owner's customer id or e-mail")
    ] = None,
    release: Annotated[
        bool, typer.Option(help="release it with a new claim code for whoever gets it")
    ] = False,
    *,
    opts: StackOptions,
) -> None:
    """Hand one of your devices to another customer, or release it with a new claim code."""
    if bool(to) == release:
        raise CliError("give either --to CUSTOMER or --release")
    body: dict[str, Any] = {"release": True}
    if to:
        body = {"to_email": to} if "@" in to else {"to_customer": to}
    outcome = required_client(opts).post(f"/devices/{quote(thing, safe='')}/transfer", body)
    if opts.json:
        emit(outcome, True)
        return
    if outcome.get("claim_code"):
        print(f"{thing} released; its new claim code (shown once): {outcome['claim_code']}")
    else:
        print(f"{thing} now belongs to {outcome['to_customer']}")


def devices_reissue_code(
    serial: Annotated[str, typer.Argument(show_default=False)], *, opts: StackOptions
) -> None:
    """Give an unclaimed device a new claim code and unlock it (support; prints the code once)."""
    store = ownership_store_of(opts.target())
    try:
        code = reissue_claim_code(store, serial, load_ownership_policy())
    except ClaimNotFound as exc:
        raise CliError(f"not_found: {exc}") from exc
    except AlreadyClaimed as exc:
        raise CliError(f"already_claimed: {exc}") from exc
    emit({"serial": serial, "claim_code": code}, True)


def install(devices_app: typer.Typer) -> None:
    devices_app.command("claim")(stack_command(devices_claim))
    devices_app.command("transfer")(stack_command(devices_transfer))
    devices_app.command("reissue-code")(stack_command(devices_reissue_code))
