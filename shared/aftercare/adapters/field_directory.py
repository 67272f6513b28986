"""The engineer directory on FieldTable (patterns F1, F2 in template.yaml): engineers and
partner companies, read by booking and dispatch, written by managers and the seed."""

from __future__ import annotations

from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.field_items import (
    DIRECTORY,
    ENGINEER_PREFIX,
    PARTNER_PREFIX,
    engineer_item,
    engineer_key,
    partner_item,
)
from aftercare.models.field import Engineer, Partner


class DynamoEngineerDirectory:
    """`EngineerDirectory` on FieldTable. Listings read the one DIRECTORY partition (a few
    hundred engineers at most); a region filter matches any of an engineer's regions."""

    ddb = LazyClient("dynamodb")

    def __init__(self, *, table: str, ddb: Any = None) -> None:
        self.table = table
        self._ddb = ddb

    def list_engineers(self, region: str | None = None) -> list[Engineer]:
        engineers = [Engineer.model_validate(i) for i in self._directory(ENGINEER_PREFIX)]
        if region is not None:
            engineers = [e for e in engineers if region in e.regions]
        return engineers

    def get_engineer(self, engineer_id: str) -> Engineer | None:
        got = self.ddb.get_item(TableName=self.table, Key=to_item(engineer_key(engineer_id)))
        item = got.get("Item")
        return Engineer.model_validate(_record(item)) if item else None

    def list_partners(self) -> list[Partner]:
        return [Partner.model_validate(i) for i in self._directory(PARTNER_PREFIX)]

    def put_engineer(self, engineer: Engineer) -> None:
        self.ddb.put_item(TableName=self.table, Item=to_item(engineer_item(engineer)))

    def put_partner(self, partner: Partner) -> None:
        self.ddb.put_item(TableName=self.table, Item=to_item(partner_item(partner)))

    def _directory(self, prefix: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": to_attr(DIRECTORY), ":prefix": to_attr(prefix)},
        }
        rows: list[dict[str, Any]] = []
        while True:
            page = self.ddb.query(**request)
            rows += [_record(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return rows
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _record(item: dict[str, Any]) -> dict[str, Any]:
    """The record without its keys (the models forbid unknown fields)."""
    return {k: v for k, v in from_item(item).items() if k not in ("pk", "sk")}
