"""Parked messages on DynamoDB: rejected or dead-lettered input, with reasons, for replay.

An item never exceeds DynamoDB's 400 KB item limit, whatever was parked: the payload is kept as
a bounded excerpt with the SHA-256 digest and size of the original bytes, the detail is
bounded, and the envelope (what a replay re-sends) is kept inline up to `MAX_INLINE_ENVELOPE`.
That covers every message AWS IoT Core (and the local broker) accepts (128 KB, about 171 KB once
base64-encoded). A bigger envelope (only a message put on a queue by hand can be one) goes in
full to the ParkedPayloadBucket, and the item's `envelope_ref` says where (``s3://bucket/key``);
without a bucket, `envelope_omitted` says it was not kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.domain.ports import ParkedMessage, ReplayFailed

PARKED_RETENTION = timedelta(days=30)
MAX_EXCERPT_BYTES = 16 * 1024
MAX_DETAIL_BYTES = 4 * 1024
MAX_INLINE_ENVELOPE = 256 * 1024
_BASE64_FIELDS = ("payload_b64", "base64OriginalPayload")


def _bounded(text: str, limit: int) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."


def original_payload(message: ParkedMessage) -> bytes:
    """The bytes the sender published, when the envelope carries them; else the excerpt."""
    envelope = message.envelope or {}
    for field in _BASE64_FIELDS:
        value = envelope.get(field)
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return value.encode("utf-8", errors="replace")
    body = envelope.get("body")  # an unrecognised dead letter, kept as it came
    text = body if isinstance(body, str) else message.payload
    return text.encode("utf-8", errors="replace")


def envelope_text(message: ParkedMessage) -> str | None:
    return json.dumps(message.envelope) if message.envelope is not None else None


def parked_key(message: ParkedMessage) -> str:
    received_at = message.model_dump(mode="json", include={"received_at"})["received_at"]
    return f"{received_at}#{_bounded(message.message_id, 256)}"


def parked_item(message: ParkedMessage, *, envelope_ref: str | None = None) -> dict[str, Any]:
    """The ParkedTable item for one message, bounded in size (see the module docstring);
    `envelope_ref` names where the envelope was kept when it is too big to be inline."""
    data = message.model_dump(mode="json")
    raw = original_payload(message)
    envelope = envelope_text(message)
    omitted = None
    if envelope is not None and len(envelope) > MAX_INLINE_ENVELOPE:
        if envelope_ref is None:
            omitted = (
                f"envelope of {len(envelope)} bytes not kept (over {MAX_INLINE_ENVELOPE}); "
                "the payload is the excerpt, payload_sha256 and payload_bytes"
            )
        envelope = None
    else:
        envelope_ref = None
    expires = message.received_at + PARKED_RETENTION
    return {
        **data,
        "detail": _bounded(message.detail, MAX_DETAIL_BYTES),
        "payload": _bounded(message.payload, MAX_EXCERPT_BYTES),
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "parked_key": parked_key(message),
        "envelope": envelope,
        "envelope_ref": envelope_ref,
        "envelope_omitted": omitted,
        "parked_at": datetime.now(UTC).isoformat(),
        "expires_at": int(expires.timestamp()),
    }


class DynamoParkedStore:
    """ParkedStore on the ParkedTable (and the ParkedPayloadBucket for envelopes too big for an
    item); idempotent per (source, received_at, message id)."""

    def __init__(
        self,
        *,
        table: str,
        ddb: Any | None = None,
        bucket: str | None = None,
        s3: Any | None = None,
    ) -> None:
        self.table = table
        self.bucket = bucket
        self._ddb = ddb
        self._s3 = s3

    ddb = LazyClient("dynamodb")
    s3 = LazyClient("s3")

    def park(self, message: ParkedMessage) -> None:
        envelope = envelope_text(message)
        ref = None
        if self.bucket and envelope is not None and len(envelope) > MAX_INLINE_ENVELOPE:
            key = f"{message.source}/{parked_key(message)}.json"
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=envelope.encode(),
                ContentType="application/json",
            )
            ref = f"s3://{self.bucket}/{key}"
        item = parked_item(message, envelope_ref=ref)
        self.ddb.put_item(TableName=self.table, Item=to_item(item))

    def kept_envelope(self, ref: str) -> dict[str, Any]:
        """The full envelope an item's `envelope_ref` (``s3://bucket/key``) points at."""
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return dict(json.loads(body))

    def list(self) -> list[dict[str, Any]]:
        """Every parked item, newest first: a Scan (the table holds 30 days, TTL'd)."""
        items: list[dict[str, Any]] = []
        for page in self.ddb.get_paginator("scan").paginate(TableName=self.table):
            items.extend(_decoded(from_item(i)) for i in page.get("Items", []))
        return sorted(items, key=lambda i: str(i.get("received_at")), reverse=True)

    def get(self, source: str, parked_key: str) -> dict[str, Any] | None:
        found = self.ddb.get_item(
            TableName=self.table,
            Key={"source": {"S": source}, "parked_key": {"S": parked_key}},
            ConsistentRead=True,
        ).get("Item")
        return _decoded(from_item(found)) if found else None

    def with_envelope(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item with the envelope kept in the ParkedPayloadBucket (too big for the item);
        `envelope_omitted` says why when it cannot be read."""
        if not item.get("envelope_ref") or item.get("envelope"):
            return item
        try:
            return {**item, "envelope": self.kept_envelope(str(item["envelope_ref"]))}
        except (BotoCoreError, ClientError) as exc:
            return {**item, "envelope_omitted": f"{item['envelope_ref']} unreadable: {exc}"}

    def record_replay(self, source: str, parked_key: str, event: dict[str, Any]) -> None:
        """Append one replay (when, by whom, outcome) to the item's history; the item stays."""
        self.ddb.update_item(
            TableName=self.table,
            Key={"source": {"S": source}, "parked_key": {"S": parked_key}},
            UpdateExpression=(
                "SET replays = list_append(if_not_exists(replays, :none), :event), "
                "replay_count = if_not_exists(replay_count, :zero) + :one, "
                "replayed_at = :at, replayed_by = :by, replay_outcome = :outcome"
            ),
            ConditionExpression="attribute_exists(parked_key)",
            ExpressionAttributeValues={
                ":none": {"L": []},
                ":event": {"L": [to_attr(event)]},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":at": {"S": str(event["at"])},
                ":by": {"S": str(event["by"])},
                ":outcome": {"S": str(event["outcome"])},
            },
        )


def _decoded(item: dict[str, Any]) -> dict[str, Any]:
    if isinstance(item.get("envelope"), str):
        item["envelope"] = json.loads(item["envelope"])
    return item


class SqsRedelivery:
    """Redelivery to the template's queues on SQS; `queue_url` maps a logical id to its URL
    (a deployed function's settings, or the CLI's target)."""

    def __init__(self, *, queue_url: Callable[[str], str], sqs: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    sqs = LazyClient("sqs")

    def send(self, queue: str, body: str) -> str | None:
        try:
            sent = self.sqs.send_message(QueueUrl=self.queue_url(queue), MessageBody=body)
        except (BotoCoreError, ClientError) as exc:
            raise ReplayFailed(str(exc)) from exc
        message_id = sent.get("MessageId")
        return str(message_id) if message_id else None
