"""`aftercare local …` and `aftercare device …`: groups whose parser lives with their code.

The local stack (`infra.local.cli`) and the device agent (`devices.cli`) keep their own
argument parsers: they run without the rest of the CLI (`python -m infra.local.cli`, a device
with only the agent installed). Here each is one command that hands its words on unchanged, so
their flags, help and exit codes are exactly theirs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import typer

from devices.cli import register as register_device
from infra.local.cli import main as local_main

PASS_THROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
}  # with add_help_option=False: `--help` too is answered by the group's own parser


def run_local(argv: Sequence[str]) -> int:
    return local_main(list(argv))


def run_device(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="aftercare")
    register_device(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["device", *argv])
    return int(args.func(args))


def local(ctx: typer.Context) -> int:
    """Run template.yaml on this machine (no AWS): `local up`, `local down`."""
    return run_local(ctx.args)


def device(ctx: typer.Context) -> int:
    """Run a simulated device agent, or raise a fault through it: `device run|fault`."""
    return run_device(ctx.args)


def add_local(app: typer.Typer) -> None:
    """`local`, handing `up|down …` to the local stack's own parser."""
    text = "run template.yaml on this machine (no AWS): up | down"
    app.command("local", help=text, context_settings=PASS_THROUGH, add_help_option=False)(local)


def add_device(app: typer.Typer) -> None:
    """`device`, handing `run|fault …` to the device agent's own parser."""
    text = "run a simulated device agent, or raise a fault through it: run | fault"
    app.command("device", help=text, context_settings=PASS_THROUGH, add_help_option=False)(device)
