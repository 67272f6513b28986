"""Where the engineer CLI points: the running local stack, or a deployed stack in AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

STATE_FILE = "local.json"
AWS_NAMES = {
    "DevicesTable": "aftercare-devices-{stage}",
    "CustomersTable": "aftercare-customers-{stage}",
    "TicketsTable": "aftercare-tickets-{stage}",
    "ParkedTable": "aftercare-parked-{stage}",
    # queues by name: `Target.queue_url` looks their URL up
    "FaultQueue": "aftercare-faults-{stage}",
    "DiagnosticsResultQueue": "aftercare-diagnostics-{stage}",
}


class TargetError(RuntimeError):
    """The CLI cannot tell where the stack is."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding template.yaml, from `start` (cwd) upwards."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file():
            return candidate
    return Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return project_root() / ".aftercare"


def read_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / STATE_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise TargetError(
            f"no local stack state at {path}; start one with `aftercare local up`"
        ) from exc


@dataclass
class Target:
    """Clients and resource names for one stack."""

    resources: dict[str, str]
    endpoint_url: str | None = None
    region: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            kwargs: dict[str, Any] = {}
            if self.endpoint_url:
                kwargs = {
                    "endpoint_url": self.endpoint_url,
                    "aws_access_key_id": "testing",
                    "aws_secret_access_key": "testing",  # moto's dummy credentials
                }
            session = boto3.session.Session(region_name=self.region)
            self._clients[service] = session.client(service, **kwargs)  # type: ignore[call-overload]
        return self._clients[service]

    def resource(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError as exc:
            raise TargetError(f"the stack has no resource {logical_id}") from exc

    def queue_url(self, logical_id: str) -> str:
        """A queue's URL: the local stack records URLs, a deployed stage is asked by name."""
        value = self.resource(logical_id)
        if value.startswith(("http://", "https://")):
            return value
        return str(self.client("sqs").get_queue_url(QueueName=value)["QueueUrl"])


def resolve_target(*, aws: bool, stage: str, state_dir: Path | None) -> Target:
    """The local stack from its state file, or (``--aws``) a deployed stage via the AWS chain."""
    if aws:
        names = {k: v.format(stage=stage) for k, v in AWS_NAMES.items()}
        return Target(resources=names)
    state = read_state(state_dir or default_state_dir())
    return Target(
        resources=dict(state["resources"]),
        endpoint_url=state["aws_endpoint_url"],
        region=state["region"],
        state=state,
    )
