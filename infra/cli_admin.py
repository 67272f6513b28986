"""Operator commands: `aftercare admin seed|users create`, `devices provision`, `smoke`.

Each works on the local stack and, with `--aws --stage S`, on a deployed stack found through
CloudFormation (see `infra.target`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from infra.admin.provision import DeviceRequest, ProvisionError, provision_device
from infra.admin.seed import seed_stack
from infra.admin.users import GROUPS, NewUser, UserError, create_user
from infra.cli import CliError, _add, emit, target_of
from infra.seeding import SeedDataError
from infra.smoke import DEFAULT_THING, Smoke, staff_client


def cmd_admin_seed(args: argparse.Namespace) -> None:
    """Parts, warehouses, routing, opening stock and the smoke customer; never overwrites."""
    try:
        emit(seed_stack(target_of(args), with_demo_customers=args.demo_customers), True)
    except SeedDataError as exc:
        raise CliError(str(exc)) from exc


def cmd_users_create(args: argparse.Namespace) -> None:
    """A user in the stack's Cognito pool and one group."""
    user = NewUser(
        username=args.username,
        group=args.group,
        customer_id=args.customer_id,
        email=args.email,
        password=args.password,
        temporary_password=args.temporary_password,
    )
    try:
        emit(create_user(target_of(args), user), True)
    except UserError as exc:
        raise CliError(str(exc)) from exc


def cmd_devices_provision(args: argparse.Namespace) -> None:
    """IoT thing + certificate + policy, registry entry, and the agent's files in --out."""
    request = DeviceRequest(
        thing=args.thing,
        model=args.model,
        customer_id=args.customer,
        region=args.region,
        serial=args.serial,
        warranty_until=args.warranty_until,
    )
    try:
        emit(provision_device(target_of(args), request, args.out), True)
    except ProvisionError as exc:
        raise CliError(str(exc)) from exc


def cmd_smoke(args: argparse.Namespace) -> int:
    """A test fault through the stack, hop by hop; exit 0 only when every hop is ok."""
    target = target_of(args)
    smoke = Smoke(
        target=target,
        thing=args.thing,
        timeout=args.timeout,
        diag_timeout=args.diag_timeout,
        require_device=args.require_device,
        staff=staff_client(args, target),
    )
    run = smoke.execute()
    document: dict[str, Any] = {
        "ok": run.ok,
        "stack": target.name,
        "thing": args.thing,
        "fault_id": smoke.fault_id,
        "ticket_id": smoke.ticket_id,
        "hops": [hop.as_json() for hop in run.hops],
    }
    if args.json:
        emit(document, True)
    else:
        emit(document["hops"], False, ["name", "ok", "ms", "skipped", "detail"])
    failed = run.first_failure
    if failed is not None:
        print(f"aftercare smoke: hop {failed.name} failed: {failed.detail}", file=sys.stderr)
        return 1
    return 0


def register_devices(devices: Any) -> None:
    """`devices provision`, under the `devices` group of `infra.cli`."""
    parser = _add(devices, "provision", cmd_devices_provision, cmd_devices_provision.__doc__ or "")
    parser.add_argument("--thing", required=True, help="IoT thing name (also the MQTT client id)")
    parser.add_argument("--model", required=True, help="product model, e.g. AC-HP")
    parser.add_argument("--customer", required=True, help="owning customer id")
    parser.add_argument(
        "--region", help="service region (eu-west…); default: that of the customer's other devices"
    )
    parser.add_argument("--serial", help="default SN-<thing>")
    parser.add_argument("--warranty-until", type=date.fromisoformat, metavar="YYYY-MM-DD")
    parser.add_argument("--out", type=Path, required=True, help="directory for the agent's files")


def register(sub: Any) -> None:
    """Add `admin` and `smoke` to the `aftercare` parser."""
    admin = sub.add_parser("admin", help="operator set-up of a stack").add_subparsers(required=True)
    seed = _add(admin, "seed", cmd_admin_seed, cmd_admin_seed.__doc__ or "")
    seed.add_argument("--demo-customers", action="store_true", help="also the 80 demo customers")
    users = admin.add_parser("users", help="Cognito users").add_subparsers(required=True)
    create = _add(users, "create", cmd_users_create, cmd_users_create.__doc__ or "")
    create.add_argument("--username", required=True)
    create.add_argument("--group", required=True, choices=GROUPS)
    create.add_argument("--customer-id", help="required for customers, refused for staff")
    create.add_argument("--email")
    secret = create.add_mutually_exclusive_group()
    secret.add_argument(
        "--temporary-password",
        action="store_true",
        help="generate a temporary password and print it (changed at first login)",
    )
    secret.add_argument("--password", help="a permanent password")

    smoke = sub.add_parser("smoke", help=cmd_smoke.__doc__)
    from infra.cli import _common

    _common(smoke)
    smoke.set_defaults(func=cmd_smoke)
    smoke.add_argument("--thing", default=DEFAULT_THING, help="a provisioned test device")
    smoke.add_argument("--timeout", type=float, default=60.0, help="seconds per waiting hop")
    smoke.add_argument(
        "--diag-timeout", type=int, default=20, help="seconds the device has to answer"
    )
    smoke.add_argument(
        "--require-device",
        action="store_true",
        help="fail (not skip) the diagnostics hop when the device does not answer",
    )
    smoke.add_argument("--user", help="staff user for the API hops (password: AFTERCARE_PASSWORD)")
