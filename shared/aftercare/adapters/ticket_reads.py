"""Ticket reads on TicketsTable: one ticket with its history, listings and pages newest first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item
from aftercare.adapters.ticket_items import TICKET_PREFIX, ticket_detail, ticket_from_item
from aftercare.domain.paging import TicketFilters, TicketPage, TicketQuery, newest_page
from aftercare.domain.ports import TicketDetail, TicketNotFound
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketStatus


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
            tickets = self._query_index("by_thing", "thing", thing)
            return [t for t in tickets if status is None or t.status == status]
        statuses = [status] if status else [s.value for s in TicketStatus]
        tickets = [t for s in statuses for t in self._query_index("by_status", "status", s)]
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
        candidates = [
            pair
            for index, attribute, value, status in partitions
            for pair in self._newest(
                newest_first_query(
                    self.tickets_table,
                    index,
                    attribute,
                    value,
                    before=query.after,
                    limit=query.limit + 1,
                    status=status,
                    things=things,
                    narrowing=query.filters,
                ),
                want=query.limit + 1,
            )
        ]
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

    def _query_index(self, index: str, attribute: str, value: str) -> list[Ticket]:
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            IndexName=index,
            KeyConditionExpression="#a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
            ScanIndexForward=False,
        )
        return [ticket_from_item(from_item(i)) for page in pages for i in page.get("Items", [])]
