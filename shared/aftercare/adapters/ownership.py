"""Device ownership on ClaimsTable, DevicesTable and CustomersTable.

ClaimsTable (key `serial`; GSI `by_thing` on `thing`) holds every provisioned device that can be
claimed or has been: its claim code only as a hash, the wrong codes counted, who claimed it and
the warranty the first claim started. Access patterns (also beside the table in template.yaml):
    O1 a claim by serial                  GetItem serial (consistent)
    O2 a claim by thing name              Query by_thing
    O3 count a wrong code                 UpdateItem ADD wrong_codes, only below the limit
    O4 claim                              TransactWriteItems: claim Update (unclaimed, code hash,
                                          below the limit) + device Put (not registered) +
                                          customer Update ADD devices (customer exists)
    O5 transfer                           TransactWriteItems: device Update (owner unchanged) +
                                          old customer DELETE devices + new customer ADD devices
                                          (exists) [+ claim Update claimed_by]
    O6 release                            TransactWriteItems: device Delete (owner unchanged) +
                                          old customer DELETE devices + claim Put (a new code)
    O7 a customer's devices               Query DevicesTable by_customer + GetItem customer's
                                          `devices` + BatchGetItem (consistent), owner checked
    O9 support re-issues a code           UpdateItem code_hash, wrong_codes = 0 (unclaimed only)
    O8 a customer by e-mail               Query CustomersTable by_email (transfer target)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.transactions import CONDITION_FAILED
from aftercare.domain.ports.ownership import (
    ClaimConflict,
    ClaimState,
    NotTheOwner,
    UnknownCustomer,
)

BATCH_GET_LIMIT = 100
OnFailure = Callable[[], Exception] | None
TxPart = tuple[dict[str, Any], OnFailure]


@dataclass(frozen=True)
class OwnershipTables:
    claims: str
    devices: str
    customers: str


def claim_key(serial: str) -> dict[str, Any]:
    return {"serial": {"S": serial}}


def claim_item(state: ClaimState) -> dict[str, Any]:
    return to_item(state.model_dump(mode="json"))


def wrong_code_update(table: str, serial: str, limit: int) -> dict[str, Any]:
    """O3: one more wrong code, refused once claimed or at the limit."""
    return {
        "TableName": table,
        "Key": claim_key(serial),
        "UpdateExpression": "ADD wrong_codes :one",
        "ConditionExpression": (
            "attribute_exists(serial) AND attribute_not_exists(claimed_by) "
            "AND (attribute_not_exists(wrong_codes) OR wrong_codes < :limit)"
        ),
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
        "ReturnValues": "UPDATED_NEW",
    }


def reissue_update(table: str, serial: str, code_hash: str) -> dict[str, Any]:
    """O9: a new code for an unclaimed device, its wrong codes forgotten (support)."""
    return {
        "TableName": table,
        "Key": claim_key(serial),
        "UpdateExpression": "SET code_hash = :hash, wrong_codes = :zero",
        "ConditionExpression": "attribute_exists(serial) AND attribute_not_exists(claimed_by)",
        "ExpressionAttributeValues": {":hash": to_attr(code_hash), ":zero": {"N": "0"}},
    }


def claim_parts(
    tables: OwnershipTables,
    state: ClaimState,
    device: dict[str, Any],
    customer_id: str,
    *,
    now: datetime,
    limit: int,
) -> list[TxPart]:
    """O4: the claim used, the device registered, the customer's list; each with its meaning."""
    claim = {
        "Update": {
            "TableName": tables.claims,
            "Key": claim_key(state.serial),
            "UpdateExpression": (
                "SET claimed_by = :c, claimed_at = :now, wrong_codes = :zero, "
                "activated_at = :activated, warranty_until = :until"
            ),
            "ConditionExpression": (
                "attribute_exists(serial) AND attribute_not_exists(claimed_by) "
                "AND code_hash = :hash "
                "AND (attribute_not_exists(wrong_codes) OR wrong_codes < :limit)"
            ),
            "ExpressionAttributeValues": {
                ":c": to_attr(customer_id),
                ":now": to_attr(now.isoformat()),
                ":zero": {"N": "0"},
                ":activated": to_attr(device["activated_at"]),
                ":until": to_attr(device["warranty_until"]),
                ":hash": to_attr(state.code_hash),
                ":limit": {"N": str(limit)},
            },
        }
    }
    register = {
        "Put": {
            "TableName": tables.devices,
            "Item": to_item({**device, "owner_since": now.isoformat()}),
            "ConditionExpression": "attribute_not_exists(thing)",
        }
    }
    return [
        (claim, ClaimConflict),
        (register, ClaimConflict),
        (
            add_device(tables.customers, customer_id, state.thing),
            lambda: UnknownCustomer(customer_id),
        ),
    ]


def add_device(table: str, customer_id: str, thing: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"customer_id": to_attr(customer_id)},
            "UpdateExpression": "ADD devices :thing",
            "ConditionExpression": "attribute_exists(customer_id)",
            "ExpressionAttributeValues": {":thing": {"SS": [thing]}},
        }
    }


def remove_device(table: str, customer_id: str, thing: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"customer_id": to_attr(customer_id)},
            "UpdateExpression": "DELETE devices :thing",
            "ConditionExpression": "attribute_exists(customer_id)",
            "ExpressionAttributeValues": {":thing": {"SS": [thing]}},
        }
    }


def owner_unchanged(old: str) -> dict[str, Any]:
    return {
        "ConditionExpression": "customer_id = :old",
        "ExpressionAttributeValues": {":old": to_attr(old)},
    }


def transfer_parts(
    tables: OwnershipTables,
    device: dict[str, Any],
    claim: ClaimState | None,
    new: str,
    now: datetime,
) -> list[TxPart]:
    """O5: the registry's owner, both customers' lists, and the claim's owner if it has one."""
    thing, old = str(device["thing"]), str(device["customer_id"])
    guard = owner_unchanged(old)
    move = {
        "Update": {
            "TableName": tables.devices,
            "Key": {"thing": to_attr(thing)},
            "UpdateExpression": "SET customer_id = :new, owner_since = :now",
            "ConditionExpression": guard["ConditionExpression"],
            "ExpressionAttributeValues": {
                **guard["ExpressionAttributeValues"],
                ":new": to_attr(new),
                ":now": to_attr(now.isoformat()),
            },
        }
    }
    parts: list[TxPart] = [
        (move, lambda: NotTheOwner(f"device {thing} not found")),
        (remove_device(tables.customers, old, thing), lambda: UnknownCustomer(old)),
        (add_device(tables.customers, new, thing), lambda: UnknownCustomer(new)),
    ]
    if claim is not None:
        follow = {
            "Update": {
                "TableName": tables.claims,
                "Key": claim_key(claim.serial),
                "UpdateExpression": "SET claimed_by = :new",
                "ConditionExpression": "attribute_exists(serial)",
                "ExpressionAttributeValues": {":new": to_attr(new)},
            }
        }
        parts.append((follow, ClaimConflict))
    return parts


def release_parts(
    tables: OwnershipTables, device: dict[str, Any], claimable: ClaimState
) -> list[TxPart]:
    """O6: unregistered, off the owner's list, claimable again with a new code."""
    thing, old = str(device["thing"]), str(device["customer_id"])
    unregister = {"Delete": {"TableName": tables.devices, "Key": {"thing": to_attr(thing)}}}
    unregister["Delete"].update(owner_unchanged(old))
    claim = {"Put": {"TableName": tables.claims, "Item": claim_item(claimable)}}
    return [
        (unregister, lambda: NotTheOwner(f"device {thing} not found")),
        (remove_device(tables.customers, old, thing), lambda: UnknownCustomer(old)),
        (claim, None),
    ]


def failure_of(parts: Sequence[TxPart], exc: ClientError) -> Exception | None:
    """The meaning of the first item whose condition failed, if the transaction was cancelled
    by a condition (a conflict with no failed condition is retried by the caller's retry)."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = exc.response.get("CancellationReasons") or []
    for (_, meaning), reason in zip(parts, reasons, strict=False):
        if reason.get("Code") == CONDITION_FAILED and meaning is not None:
            return meaning()
    return None


class DynamoOwnershipStore:
    """OwnershipStore on the three tables (see the module's access patterns)."""

    def __init__(
        self,
        *,
        claims_table: str,
        devices_table: str,
        customers_table: str,
        ddb: Any | None = None,
    ) -> None:
        self.tables = OwnershipTables(
            claims=claims_table, devices=devices_table, customers=customers_table
        )
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def claim_state(
        self, *, serial: str | None = None, thing: str | None = None
    ) -> ClaimState | None:
        if serial is None and thing is not None:
            answer = self.ddb.query(
                TableName=self.tables.claims,
                IndexName="by_thing",
                KeyConditionExpression="thing = :t",
                ExpressionAttributeValues={":t": to_attr(thing)},
                Limit=1,
            )
            items = answer.get("Items") or []
            if not items:
                return None
            serial = str(from_item(items[0])["serial"])
        if serial is None:
            return None
        answer = self.ddb.get_item(
            TableName=self.tables.claims, Key=claim_key(serial), ConsistentRead=True
        )
        return ClaimState.model_validate(from_item(answer["Item"])) if "Item" in answer else None

    def count_wrong_code(self, serial: str, *, limit: int) -> int:
        try:
            answer = self.ddb.update_item(**wrong_code_update(self.tables.claims, serial, limit))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ClaimConflict(serial) from exc
            raise
        return int(from_item(answer["Attributes"])["wrong_codes"])

    def claim(
        self,
        state: ClaimState,
        device: dict[str, Any],
        customer_id: str,
        now: datetime,
        *,
        limit: int,
    ) -> None:
        self._transact(claim_parts(self.tables, state, device, customer_id, now=now, limit=limit))

    def device(self, thing: str) -> dict[str, Any] | None:
        answer = self.ddb.get_item(
            TableName=self.tables.devices, Key={"thing": to_attr(thing)}, ConsistentRead=True
        )
        return from_item(answer["Item"]) if "Item" in answer else None

    def transfer(
        self, device: dict[str, Any], claim: ClaimState | None, new: str, now: datetime
    ) -> None:
        self._transact(transfer_parts(self.tables, device, claim, new, now))

    def release(self, device: dict[str, Any], claimable: ClaimState, now: datetime) -> None:
        self._transact(release_parts(self.tables, device, claimable))

    def reissue(self, serial: str, code_hash: str) -> None:
        try:
            self.ddb.update_item(**reissue_update(self.tables.claims, serial, code_hash))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ClaimConflict(serial) from exc
            raise

    def customer_by_email(self, email: str) -> str | None:
        answer = self.ddb.query(
            TableName=self.tables.customers,
            IndexName="by_email",
            KeyConditionExpression="email = :e",
            ExpressionAttributeValues={":e": to_attr(email)},
            Limit=2,
        )
        ids = {str(from_item(i)["customer_id"]) for i in answer.get("Items") or []}
        return ids.pop() if len(ids) == 1 else None  # an ambiguous address names nobody

    def devices_of(self, customer_id: str) -> list[dict[str, Any]]:
        things = set(self._indexed_things(customer_id)) | set(self._listed_things(customer_id))
        devices = self._get_devices(sorted(things))
        return [d for d in devices if d.get("customer_id") == customer_id]

    def _indexed_things(self, customer_id: str) -> list[str]:
        pages = self.ddb.get_paginator("query").paginate(
            TableName=self.tables.devices,
            IndexName="by_customer",
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": to_attr(customer_id)},
            ProjectionExpression="thing",
        )
        return [str(from_item(i)["thing"]) for page in pages for i in page.get("Items", [])]

    def _listed_things(self, customer_id: str) -> list[str]:
        answer = self.ddb.get_item(
            TableName=self.tables.customers,
            Key={"customer_id": to_attr(customer_id)},
            ProjectionExpression="devices",
            ConsistentRead=True,
        )
        return [str(t) for t in from_item(answer.get("Item") or {}).get("devices", [])]

    def _get_devices(self, things: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(things), BATCH_GET_LIMIT):
            keys = [{"thing": to_attr(t)} for t in things[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self.tables.devices: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = self.ddb.batch_get_item(RequestItems=request)
                found += [from_item(i) for i in answer["Responses"].get(self.tables.devices, [])]
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _transact(self, parts: list[TxPart]) -> None:
        try:
            self.ddb.transact_write_items(TransactItems=[request for request, _ in parts])
        except ClientError as exc:
            failure = failure_of(parts, exc)
            if failure is not None:
                raise failure from exc
            raise
