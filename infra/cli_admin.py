"""Operator commands: `aftercare admin seed|users create`, `devices provision`, `smoke`.

Each works on the local stack and, with `--aws --stage S`, on a deployed stack found through
CloudFormation (see `infra.target`). Their failures (`SeedDataError`, `UserError`,
`ProvisionError`) are reported by `infra.cli` like every other known failure: one line, exit 1.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import typer

from infra.admin.provision import DeviceRequest, provision_device
from infra.admin.seed import seed_stack
from infra.admin.users import GROUPS, NewUser, create_user
from infra.cli_core import StackOptions, stack_command
from infra.cli_output import emit
from infra.smoke import DEFAULT_THING, Smoke, staff_client

admin_app = typer.Typer(help="operator set-up of a stack")
users_app = typer.Typer(help="Cognito users")
admin_app.add_typer(users_app, name="users")
Required = Annotated[str, typer.Option(show_default=False)]
Group = Literal["engineers", "managers", "customers"]
assert get_args(Group) == GROUPS, "the --group choices are the pool's groups"


@admin_app.command("seed")
@stack_command
def admin_seed(
    demo_customers: Annotated[
        bool, typer.Option("--demo-customers", help="also the 80 demo customers")
    ] = False,
    *,
    opts: StackOptions,
) -> None:
    """Parts, warehouses, routing, opening stock and the smoke customer; never overwrites."""
    emit(seed_stack(opts.target(), with_demo_customers=demo_customers), True)


@users_app.command("create")
@stack_command
def users_create(
    *,
    username: Required,
    group: Annotated[Group, typer.Option(show_default=False)],
    customer_id: Annotated[
        str | None, typer.Option(help="required for customers, refused for staff")
    ] = None,
    engineer_id: Annotated[
        str | None, typer.Option(help="an engineer's directory id (E-...), engineers only")
    ] = None,
    email: str | None = None,
    temporary_password: Annotated[
        bool,
        typer.Option(
            "--temporary-password",
            help="generate a temporary password and print it (changed at first login)",
        ),
    ] = False,
    password: Annotated[str | None, typer.Option(help="a permanent password")] = None,
    opts: StackOptions,
) -> None:
    """A user in the stack's Cognito pool and one group."""
    if temporary_password and password is not None:
        raise typer.BadParameter("not allowed with --temporary-password", param_hint="--password")
    user = NewUser(
        username=username,
        group=group,
        customer_id=customer_id,
        engineer_id=engineer_id,
        email=email,
        password=password,
        temporary_password=temporary_password,
    )
    emit(create_user(opts.target(), user), True)


@stack_command
def devices_provision(
    *,
    thing: Annotated[
        str, typer.Option(help="IoT thing name (also the MQTT client id)", show_default=False)
    ],
    model: Annotated[str, typer.Option(help="product model, e.g. AC-HP", show_default=False)],
    customer: Annotated[str, typer.Option(help="owning customer id", show_default=False)],
    out: Annotated[Path, typer.Option(help="directory for the agent's files", show_default=False)],
    region: Annotated[
        str | None,
        typer.Option(
            help="service region (eu-west…); default: that of the customer's other devices"
        ),
    ] = None,
    serial: Annotated[str | None, typer.Option(help="default SN-<thing>")] = None,
    warranty_until: Annotated[
        date | None, typer.Option(parser=date.fromisoformat, metavar="YYYY-MM-DD")
    ] = None,
    opts: StackOptions,
) -> None:
    """IoT thing + certificate + policy, registry entry, and the agent's files in --out."""
    request = DeviceRequest(
        thing=thing,
        model=model,
        customer_id=customer,
        region=region,
        serial=serial,
        warranty_until=warranty_until,
    )
    emit(provision_device(opts.target(), request, out), True)


@stack_command
def smoke(
    *,
    thing: Annotated[str, typer.Option(help="a provisioned test device")] = DEFAULT_THING,
    timeout: Annotated[float, typer.Option(help="seconds per waiting hop")] = 60.0,
    diag_timeout: Annotated[int, typer.Option(help="seconds the device has to answer")] = 20,
    require_device: Annotated[
        bool,
        typer.Option(
            "--require-device",
            help="fail (not skip) the diagnostics hop when the device does not answer",
        ),
    ] = False,
    user: Annotated[
        str | None,
        typer.Option(help="staff user for the API hops (password: AFTERCARE_PASSWORD)"),
    ] = None,
    opts: StackOptions,
) -> int:
    """A test fault through the stack, hop by hop; exit 0 only when every hop is ok."""
    target = opts.target()
    probe = Smoke(
        target=target,
        thing=thing,
        timeout=timeout,
        diag_timeout=diag_timeout,
        require_device=require_device,
        staff=staff_client(opts, user, target),
    )
    run = probe.execute()
    document: dict[str, Any] = {
        "ok": run.ok,
        "stack": target.name,
        "thing": thing,
        "fault_id": probe.fault_id,
        "ticket_id": probe.ticket_id,
        "hops": [hop.as_json() for hop in run.hops],
    }
    if opts.json:
        emit(document, True)
    else:
        emit(document["hops"], False, ["name", "ok", "ms", "skipped", "detail"])
    failed = run.first_failure
    if failed is not None:
        print(f"aftercare smoke: hop {failed.name} failed: {failed.detail}", file=sys.stderr)
        return 1
    return 0
