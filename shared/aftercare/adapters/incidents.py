"""DynamoDB adapter for fleet incidents: the sharded storm counter, the incident and its
sharded statistics, child links (item shapes in `incident_items`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_item
from aftercare.adapters.incident_items import (
    LISTING,
    count_update,
    counter_key,
    incident_key,
    join_update,
    link_earlier_items,
    message_update,
    open_items,
    reset_update,
    stats_from_item,
    stats_key,
    status_items,
)
from aftercare.adapters.incident_keys import active_key, children_pk
from aftercare.adapters.ticket_items import ticket_from_item, ticket_key
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    ChildFacts,
    Incident,
    IncidentPolicy,
    IncidentStats,
    IncidentStatus,
    sampled,
    shard_of,
)
from aftercare.domain.ports.incidents import (
    CounterShard,
    IncidentAlreadyOpen,
    IncidentMoved,
    StormTally,
)
from aftercare.domain.storm_groups import pointer_name
from aftercare.domain.tickets import Ticket

CONDITION_FAILED = "ConditionalCheckFailedException"


class DynamoIncidentStore:
    """The incident ports on DynamoDB (IncidentsTable), plus the child side of the tickets."""

    ddb = LazyClient("dynamodb")

    def __init__(
        self,
        *,
        incidents_table: str,
        tickets_table: str,
        policy: IncidentPolicy,
        ddb: Any | None = None,
    ) -> None:
        self.table = incidents_table
        self.tickets_table = tickets_table
        self.policy = policy
        self._ddb = ddb

    # ------------------------------------------------------------------ storm counter

    def count_opening(self, item: CounterShard, ticket_id: str, expires_at: int) -> int:
        response = self.ddb.update_item(**count_update(self.table, item, ticket_id, expires_at))
        return int(response["Attributes"]["n"]["N"])

    def storm_tally(
        self, model: str, group: str, windows: Sequence[int], shards: int
    ) -> StormTally:
        keys = [
            to_item(counter_key(CounterShard(model=model, group=group, window=w, shard=s)))
            for w in windows
            for s in range(shards)
        ]
        counts: dict[int, int] = dict.fromkeys(windows, 0)
        tickets: set[str] = set()
        for item in self._batch_get(keys, consistent=True):
            window = int(str(item["pk"]).split("#")[3])
            counts[window] += int(item.get("n", 0))
            tickets.update(item.get("tickets", []))
        return StormTally(counts=counts, ticket_ids=sorted(tickets))

    def reset_storm(self, model: str, group: str, windows: Sequence[int], shards: int) -> None:
        """Zero the counter shards of `windows` (those that exist): a resolved storm's counts
        do not reopen an incident at the next report."""
        for window in windows:
            for shard in range(shards):
                item = CounterShard(model=model, group=group, window=window, shard=shard)
                try:
                    self.ddb.update_item(**reset_update(self.table, item))
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != CONDITION_FAILED:
                        raise

    # ------------------------------------------------------------------ opening, joining

    def open_incident(self, incident: Incident) -> None:
        try:
            self.ddb.transact_write_items(TransactItems=open_items(self.table, incident))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            others = [
                self.active_incident(incident.model, c, incident.firmware)
                for c in incident.covered_codes
            ]
            other = next((o for o in others if o is not None), None)
            if other is None:  # a conflict, not a condition: the caller's retry reads again
                raise
            raise IncidentAlreadyOpen(other) from exc

    def active_incident(self, model: str, code: str, firmware: str | None = None) -> str | None:
        """The incident open for `code` on `model` (one firmware's, when split per firmware)."""
        response = self.ddb.get_item(
            TableName=self.table, Key=to_item(active_key(code)), ConsistentRead=True
        )
        value = from_item(response.get("Item") or {}).get(pointer_name(model, firmware))
        return str(value) if value else None

    def join(self, facts: ChildFacts) -> int:
        response = self.ddb.update_item(**join_update(self.table, facts))
        return int(response["Attributes"]["joined"]["N"])

    def link_earlier(self, incident_id: str, ticket_ids: Sequence[str], at: datetime) -> int:
        linked = 0
        for ticket in self._tickets(ticket_ids):
            if ticket.incident_id is not None or not ticket.active:
                continue
            shard = shard_of(ticket.thing, self.policy.detection.shards)
            items = link_earlier_items(
                self.table, self.tickets_table, ticket, incident_id=incident_id, shard=shard, at=at
            )
            try:
                self.ddb.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                continue  # linked meanwhile (or the ticket moved on): nothing to do
            linked += 1
        return linked

    def count_messages(self, incident_id: str, thing: str, *, saved: int, sent: int) -> None:
        shard = shard_of(thing, self.policy.detection.shards)
        self.ddb.update_item(
            **message_update(self.table, incident_id, shard, saved=saved, sent=sent)
        )

    # ------------------------------------------------------------------ reads

    def get_incident(self, incident_id: str) -> Incident | None:
        response = self.ddb.get_item(
            TableName=self.table, Key=to_item(incident_key(incident_id)), ConsistentRead=True
        )
        item = response.get("Item")
        return Incident.model_validate(from_item(item)) if item else None

    def incident_stats(self, incident_id: str, shards: int) -> IncidentStats:
        keys = [to_item(stats_key(incident_id, s)) for s in range(shards)]
        parts = [stats_from_item(item) for item in self._raw_batch_get(keys)]
        sampling = self.policy.while_open.diagnostics
        sent = sum(sampled(p.joined, sampling, shards) for p in parts)
        total = IncidentStats.summed(parts)
        joined = total.children - total.linked_before
        return total.model_copy(
            update={
                "diagnostics_sent": sent + total.linked_before,
                "diagnostics_skipped": joined - sent,
            }
        )

    def children(
        self, incident_id: str, shards: int, limit: int | None = None
    ) -> list[IncidentLink]:
        """The child links (all of them, or about `limit` spread over the shards)."""
        per_shard = -(-limit // shards) if limit is not None else None
        links: list[IncidentLink] = []
        for shard in range(shards):
            found = self._query(children_pk(incident_id, shard), per_shard)
            links += [IncidentLink.model_validate(i) for i in found]
        return sorted(links, key=lambda link: link.linked_at)[:limit]

    def list_incidents(self, limit: int = 100) -> list[Incident]:
        response = self.ddb.query(
            TableName=self.table,
            IndexName="by_opened",
            KeyConditionExpression="listing = :listing",
            ExpressionAttributeValues={":listing": {"S": LISTING}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [Incident.model_validate(from_item(i)) for i in response.get("Items", [])]

    def set_status(self, incident: Incident, expected: IncidentStatus) -> None:
        """Store a changed incident if it still has status `expected` (else IncidentMoved);
        resolving it also removes its (model, code) pointer."""
        self._write_unless_moved(status_items(self.table, incident, expected), incident)

    # ------------------------------------------------------------------ helpers

    def _write_unless_moved(self, items: list[dict[str, Any]], incident: Incident) -> None:
        """One transaction guarded by the incident's stored state; a cancelled one means the
        incident moved on since it was read (IncidentMoved)."""
        try:
            self.ddb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            raise IncidentMoved(incident.incident_id) from exc

    def _tickets(self, ticket_ids: Sequence[str]) -> list[Ticket]:
        keys = [to_item(ticket_key(t)) for t in sorted(set(ticket_ids))]
        tickets = []
        for start in range(0, len(keys), 100):
            request = {
                self.tickets_table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            tickets += [ticket_from_item(i) for i in self._batch_items(request)]
        return tickets

    def _batch_get(self, keys: list[dict[str, Any]], *, consistent: bool) -> list[dict[str, Any]]:
        return [from_item(i) for i in self._raw_batch_get(keys, consistent=consistent)]

    def _raw_batch_get(
        self, keys: list[dict[str, Any]], *, consistent: bool = True
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": consistent}
            }
            found += self._batch_items(request, raw=True)
        return found

    def _batch_items(self, request: dict[str, Any], *, raw: bool = False) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        pending = request
        while pending:
            response = self.ddb.batch_get_item(RequestItems=pending)
            for found in response.get("Responses", {}).values():
                items += found if raw else [from_item(i) for i in found]
            pending = response.get("UnprocessedKeys") or {}
        return items

    def _query(self, pk: str, limit: int | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        while True:
            response = self.ddb.query(**kwargs)
            items += [from_item(i) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response or (limit is not None and len(items) >= limit):
                return items[:limit]
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
