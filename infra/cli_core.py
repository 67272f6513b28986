"""What every `aftercare` command shares: the stack options, the failure type, the row shapes.

Command modules import from here (and `infra.cli_output`, `infra.stores`); `infra.cli` imports
the command modules to build the app. Nothing here imports a command module, so there is no cycle.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aftercare.domain.tickets import Ticket

from infra.target import Target, resolve_target

LIST_FIELDS = {
    "devices": ["thing", "serial", "model", "customer_id", "region", "warranty_until"],
    "tickets": [
        "ticket_id",
        "thing",
        "fault_code",
        "status",
        "priority",
        "occurrences",
        "repeat_of",
        "opened_at",
    ],
    "dlq": [
        "source",
        "reason",
        "received_at",
        "payload",
        "detail",
        "thing",
        "parked_key",
        "payload_bytes",
        "payload_sha256",
        "envelope_ref",
        "replay_count",
        "replayed_at",
        "replayed_by",
        "replay_outcome",
    ],
}


class CliError(RuntimeError):
    """A failure reported as one line on stderr with a non-zero exit."""


@dataclass(frozen=True)
class StackOptions:
    """The options every stack command takes: output format and which stack to talk to."""

    json: bool = False
    aws: bool = False
    stage: str = "prod"
    state_dir: Path | None = None
    stack_name: str | None = None
    aws_region: str | None = None

    def target(self) -> Target:
        """The local stack (state file) or, with `aws`, the deployed stage."""
        return resolve_target(
            aws=self.aws,
            stage=self.stage,
            state_dir=self.state_dir,
            stack_name=self.stack_name,
            region=self.aws_region,
        )


_STACK_OPTIONS: dict[str, Any] = {
    "json": Annotated[bool, typer.Option("--json", help="print JSON")],
    "aws": Annotated[bool, typer.Option("--aws", help="talk to a deployed stack in AWS")],
    "stage": Annotated[str, typer.Option("--stage", help="deployed stage (with --aws)")],
    "state_dir": Annotated[
        Path | None, typer.Option("--state-dir", help="local stack state dir", show_default=False)
    ],
    "stack_name": Annotated[
        str | None,
        typer.Option("--stack-name", help="deployed stack (with --aws; default aftercare-STAGE)"),
    ],
    "aws_region": Annotated[
        str | None,
        typer.Option(
            "--aws-region", help="AWS region of the deployed stack (default: the AWS config's)"
        ),
    ],
}
Command = TypeVar("Command", bound=Callable[..., Any])


def stack_command(func: Command) -> Command:
    """Give a command the stack options; it receives them as one `opts: StackOptions`.

    The options are declared once here instead of on each of thirty commands, and keep the
    names and defaults the CLI has always had (`--json --aws --stage --state-dir …`)."""
    signature = inspect.signature(func, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "opts"]
    defaults = {f.name: f.default for f in fields(StackOptions)}
    common = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name], annotation=annotation
        )
        for name, annotation in _STACK_OPTIONS.items()
    ]

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        opts = StackOptions(**{name: kwargs.pop(name) for name in _STACK_OPTIONS})
        return func(*args, opts=opts, **kwargs)

    command.__doc__ = reflowed(func.__doc__)
    parameters = [*own, *common]
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command  # type: ignore[return-value]


def reflowed(doc: str | None) -> str | None:
    """A docstring as help text: paragraphs kept, the line breaks inside them dropped."""
    if doc is None:
        return None
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


def ticket_row(ticket: Ticket) -> dict[str, Any]:
    data = ticket.model_dump(mode="json")
    return {k: data.get(k) for k in LIST_FIELDS["tickets"]}
