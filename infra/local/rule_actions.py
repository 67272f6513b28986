"""The IoT rule actions the local rules engine runs: SQS SendMessage and Lambda (async) invoke.

Each action delivers one rule output document or raises `ActionFailed`, saying whether sending
the same document again could ever succeed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from infra.local.bridge_spec import LambdaActionSpec, SqsActionSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


LAMBDA_ACTION_TIMEOUT_S = 10.0


SQS_MAX_MESSAGE_BYTES = 1024 * 1024  # SendMessage refuses a bigger body
_TRANSIENT_ERROR_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable"}
)


class ActionFailed(Exception):
    """A rule action could not deliver its document; the message says why.

    `permanent` means sending the same document again cannot succeed (it is too big, or the
    service refused it as invalid); otherwise the failure is the service's (unreachable,
    throttled, 5xx) and worth retrying."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Action(Protocol):
    kind: ClassVar[str]

    @property
    def resource(self) -> str: ...

    def run(self, document: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class SqsAction:
    """AWS IoT's SQS action: the rule output (JSON, optionally base64) as one SQS message."""

    kind: ClassVar[str] = "SqsAction"
    client: SQSClient
    queue_url: str
    use_base64: bool

    @property
    def resource(self) -> str:
        return self.queue_url

    def run(self, document: dict[str, Any]) -> None:
        body = json.dumps(document)
        if self.use_base64:
            body = base64.b64encode(body.encode()).decode("ascii")
        size = len(body.encode())
        if size > SQS_MAX_MESSAGE_BYTES:
            raise ActionFailed(
                f"Failed to send message to SQS queue {self.queue_url}: the message is {size} "
                f"bytes, over SQS's {SQS_MAX_MESSAGE_BYTES}",
                permanent=True,
            )
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (BotoCoreError, ClientError) as exc:
            raise ActionFailed(
                f"Failed to send message to SQS queue {self.queue_url}. The error received was "
                f"{exc}",
                permanent=_refused(exc),
            ) from exc


def _refused(exc: BotoCoreError | ClientError) -> bool:
    """The service answered and refused this request: sending it again cannot help."""
    if not isinstance(exc, ClientError):
        return False  # no answer (unreachable, timed out): the service's problem
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return status < 500 and code not in _TRANSIENT_ERROR_CODES


@dataclass(frozen=True)
class LambdaAction:
    """AWS IoT's Lambda action: an asynchronous invoke (``X-Amz-Invocation-Type: Event``).

    As in AWS, only a failure to hand the event over fails the action; the function's own
    outcome is the worker's business.
    """

    kind: ClassVar[str] = "LambdaAction"
    invoke_url: str
    function_arn: str | None = None

    @property
    def resource(self) -> str:
        return self.function_arn or self.invoke_url

    def run(self, document: dict[str, Any]) -> None:
        parts = urlsplit(self.invoke_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection = HTTPConnection(parts.netloc, timeout=LAMBDA_ACTION_TIMEOUT_S)
        try:
            connection.request(
                "POST",
                path,
                body=json.dumps(document).encode(),
                headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
            )
            response = connection.getresponse()
            response.read()
        except (OSError, HTTPException) as exc:
            raise ActionFailed(f"Failed to invoke {self.resource}: {exc}") from exc
        finally:
            connection.close()
        if response.status >= 300:
            raise ActionFailed(
                f"Failed to invoke {self.resource}: HTTP {response.status}",
                permanent=400 <= response.status < 500 and response.status != 429,
            )


def build_action(spec: SqsActionSpec | LambdaActionSpec, sqs: SQSClient) -> Action:
    if isinstance(spec, SqsActionSpec):
        return SqsAction(sqs, spec.queue_url, spec.use_base64)
    return LambdaAction(spec.invoke_url, spec.function_arn)
