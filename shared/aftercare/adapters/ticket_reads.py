"""Ticket reads on TicketsTable: one ticket with its history, listings and pages newest first.

`by_status` projects ALL: a page of a status partition is one Query. `by_thing` and
`by_customer` are KEYS_ONLY (their entries are written once, when the ticket opens, and never
rewritten: see the template's access patterns): a page of a device's or a customer's tickets
is a Query of keys, then one BatchGetItem of those tickets (at most the page size + 1), the
filters (status, devices, narrowing) applied to the tickets read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aftercare.adapters.aws import LazyClient, from_item
from aftercare.adapters.ticket_items import TICKET_PREFIX, ticket_detail, ticket_from_item
from aftercare.domain.ports import TicketDetail, TicketNotFound
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketStatus

if TYPE_CHECKING:  # the paging models: only listings use them, not intake's reads
    from aftercare.domain.paging import TicketFilters, TicketPage, TicketQuery

# The template's KEYS_ONLY indexes: their Query returns keys, the tickets are read by key.
KEYS_ONLY_INDEXES = frozenset({"by_thing", "by_customer"})
BATCH_GET_LIMIT = 100


def newest_first_query(
    table: str,
    index: str,
    attribute: str,
    value: str,
    *,
    before: str | None,
    limit: int,
    status: str | None = None,
    things: tuple[str, ...] | None = None,
    narrowing: TicketFilters | None = None,
) -> dict[str, Any]:
    """T4/T5/T20 paged: one index partition newest first, strictly older than `before` (a
    cursor's opened_key), at most `limit` items read; `status` filters a device's tickets,
    `things` a customer's, `narrowing` any listing (T21: priority, region, SLA due, updated)."""
    condition = "#a = :v" + (" AND opened_key < :before" if before else "")
    names = {"#a": attribute}
    values: dict[str, Any] = {":v": {"S": value}}
    if before:
        values[":before"] = {"S": before}
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    filters = []
    if status is not None:
        filters.append("#s = :s")
        names["#s"] = "status"
        values[":s"] = {"S": status}
    if things is not None:
        filters.append("#t IN (" + ", ".join(f":t{n}" for n in range(len(things))) + ")")
        names["#t"] = "thing"
        values.update({f":t{n}": {"S": thing} for n, thing in enumerate(things)})
    if narrowing is not None:
        filters.extend(_narrowing_terms(narrowing, names, values))
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
    return request


def _matcher(
    status: str | None, things: tuple[str, ...] | None, narrowing: TicketFilters | None
) -> Any:
    """The listing's filters (those `newest_first_query` gives DynamoDB) applied to a ticket
    item read by key: status, devices, then the narrowing's comparisons of stored strings."""
    terms = [] if narrowing is None else sorted(narrowing.given().items())

    def keep(item: dict[str, Any]) -> bool:
        if status is not None and item.get("status") != status:
            return False
        if things is not None and item.get("thing") not in things:
            return False
        for field, value in terms:
            attribute, comparison = _NARROWING[field]
            stored = item.get(attribute)
            if not isinstance(stored, str) or not _COMPARE[comparison](stored, value):
                return False
        return True

    return keep


_COMPARE = {
    "=": lambda stored, value: stored == value,
    "<": lambda stored, value: stored < value,
    ">=": lambda stored, value: stored >= value,
}

# TicketFilters field -> (attribute, comparison): the stored strings compare as they sort
_NARROWING = {
    "priority": ("priority", "="),
    "region": ("region", "="),
    "sla_due_before": ("sla_resolution_due", "<"),
    "updated_since": ("updated_at", ">="),
}


def _narrowing_terms(
    narrowing: TicketFilters, names: dict[str, str], values: dict[str, Any]
) -> list[str]:
    terms = []
    for n, (field, value) in enumerate(sorted(narrowing.given().items())):
        attribute, comparison = _NARROWING[field]
        names[f"#n{n}"] = attribute
        values[f":n{n}"] = {"S": value}
        terms.append(f"#n{n} {comparison} :n{n}")
    return terms


class DynamoTicketReader:
    """The read side of tickets (API, CLI, use cases): Query on the partition or an index."""

    def __init__(self, *, tickets_table: str, ddb: Any | None = None) -> None:
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        detail = ticket_detail(self._query_partition(f"{TICKET_PREFIX}{ticket_id}"))
        if detail is None:
            raise TicketNotFound(ticket_id)
        return detail

    def _query_partition(self, pk: str) -> Iterator[dict[str, Any]]:
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
        for page in pages:
            yield from (from_item(i) for i in page.get("Items", []))

    def list_tickets(self, *, status: str | None = None, thing: str | None = None) -> list[Ticket]:
        """Newest first; by status (GSI by_status), by device (GSI by_thing), or all."""
        if thing is not None:
            tickets = [ticket_from_item(i) for i in self._index_items("by_thing", "thing", thing)]
            return [t for t in tickets if status is None or t.status == status]
        statuses = [status] if status else [s.value for s in TicketStatus]
        tickets = [
            ticket_from_item(i)
            for s in statuses
            for i in self._index_items("by_status", "status", s)
        ]
        return sorted(tickets, key=lambda t: (t.opened_at, t.ticket_id), reverse=True)

    def page_tickets(self, query: TicketQuery) -> TicketPage:
        """One page, newest first: a customer's (by_customer, filtered to `things` if given),
        per device (by_thing) when `things` is given, else per status (by_status); each
        partition read only as far as the page needs, then merged."""
        things: tuple[str, ...] | None = None
        if query.customer_id is not None:
            partitions = [("by_customer", "customer_id", query.customer_id, query.status)]
            things = query.things
        elif query.things is not None:
            partitions = [("by_thing", "thing", t, query.status) for t in query.things]
        else:
            statuses = [query.status] if query.status else [s.value for s in TicketStatus]
            partitions = [("by_status", "status", s, None) for s in statuses]
        candidates = []
        for index, attribute, value, status in partitions:
            if index in KEYS_ONLY_INDEXES:
                keys = newest_first_query(
                    self.tickets_table,
                    index,
                    attribute,
                    value,
                    before=query.after,
                    limit=query.limit + 1,
                )
                wanted = _matcher(status, things, query.filters)
                candidates += self._newest_by_key(keys, want=query.limit + 1, keep=wanted)
                continue
            request = newest_first_query(
                self.tickets_table,
                index,
                attribute,
                value,
                before=query.after,
                limit=query.limit + 1,
                status=status,
                things=things,
                narrowing=query.filters,
            )
            candidates += self._newest(request, want=query.limit + 1)
        from aftercare.domain.paging import newest_page

        return newest_page(candidates, query.limit)

    def _newest(self, request: dict[str, Any], *, want: int) -> list[tuple[str, Ticket]]:
        """Up to `want` items of one partition, following LastEvaluatedKey only while short
        (a filter or the 1 MB page limit can return fewer than `Limit`)."""
        found: list[tuple[str, Ticket]] = []
        while len(found) < want:
            response = self.ddb.query(**request)
            for raw in response.get("Items", []):
                item = from_item(raw)
                found.append((str(item["opened_key"]), ticket_from_item(item)))
            if "LastEvaluatedKey" not in response:
                break
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}
        return found[:want]

    def _newest_by_key(
        self, request: dict[str, Any], *, want: int, keep: Any
    ) -> list[tuple[str, Ticket]]:
        """Up to `want` tickets `keep` accepts from a KEYS_ONLY partition, newest first: each
        Query's keys (at most `want`), then their tickets by key; the next Query only while
        short."""
        found: list[tuple[str, Ticket]] = []
        while len(found) < want:
            response = self.ddb.query(**request)
            keys = [from_item(raw) for raw in response.get("Items", [])]
            items = self._tickets_by_key(keys)
            for key in keys:
                item = items.get(str(key["pk"]))
                if item is not None and keep(item):
                    found.append((str(item["opened_key"]), ticket_from_item(item)))
            if "LastEvaluatedKey" not in response:
                break
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}
        return found[:want]

    def _tickets_by_key(self, keys: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The ticket items of index keys, by pk (BatchGetItem, 100 keys a request; a ticket
        gone since the index was read is left out)."""
        items: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            chunk = keys[start : start + BATCH_GET_LIMIT]
            ask: dict[str, Any] = {
                self.tickets_table: {
                    "Keys": [{"pk": {"S": k["pk"]}, "sk": {"S": k["sk"]}} for k in chunk]
                }
            }
            while ask:
                response = self.ddb.batch_get_item(RequestItems=ask)
                for raw in response.get("Responses", {}).get(self.tickets_table, []):
                    item = from_item(raw)
                    items[str(item["pk"])] = item
                ask = response.get("UnprocessedKeys") or {}
        return items

    def _index_items(self, index: str, attribute: str, value: str) -> list[dict[str, Any]]:
        """Every item of one index partition, newest first (read by key from a KEYS_ONLY
        index)."""
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            IndexName=index,
            KeyConditionExpression="#a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
            ScanIndexForward=False,
        )
        listed = [from_item(i) for page in pages for i in page.get("Items", [])]
        if index not in KEYS_ONLY_INDEXES:
            return listed
        items = self._tickets_by_key(listed)
        return [items[str(k["pk"])] for k in listed if str(k["pk"]) in items]
