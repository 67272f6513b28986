"""What every local stand-in process does the same way: read its spec, log, stop on a signal,
talk to the moto server.

The orchestrator starts each stand-in (bridge, workers, gateway, IoT data plane) as
``python -m infra.local.<module> --spec-file PATH``; these helpers keep their start-up alike.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from pydantic import BaseModel, ConfigDict

from infra.local.endpoints import endpoint_for

EXIT_OK = 0
EXIT_RUNTIME_FAILURE = 1
EXIT_BAD_SPEC = 2  # the spec (or, for a worker, the handler) cannot be used: do not restart

_NOISY_LOGGERS = ("botocore", "urllib3")


class SpecModel(BaseModel):
    """A spec file the orchestrator writes: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SpecT = TypeVar("SpecT", bound=BaseModel)


def load_spec(model: type[SpecT], path: Path) -> SpecT:
    """Read and validate a spec file (raises OSError or pydantic's ValidationError)."""
    return model.model_validate_json(path.read_bytes())


def configure_logging(label: str) -> None:
    """INFO to stderr, each line tagged with `label`; botocore and urllib3 only from WARNING."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {label} %(message)s",
    )
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stop_on_signals(stop: threading.Event, logger: logging.Logger | None = None) -> None:
    """SIGTERM and SIGINT set `stop` (logged with `logger`, when given)."""

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if logger is not None:
            logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def local_aws_credentials() -> None:
    """The moto server takes any credentials; account ids are never put in endpoints."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"


def aws_client(service: str, *, region: str, endpoint_url: str) -> Any:
    """A boto3 client of the moto server (of the service's own server, when the stack gave it
    one: `infra.local.endpoints`): three tries, short timeouts (it is on this machine)."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint_for(service, endpoint_url),
        config=Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
        ),
    )
