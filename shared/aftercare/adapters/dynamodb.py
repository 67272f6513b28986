"""DynamoDB adapter for tickets and the registry.

`DynamoTicketStore` reads what intake needs with one BatchGetItem and makes every change with
one TransactWriteItems (builders in `ticket_writes`, item shapes in `ticket_items`), turning a
cancelled transaction into the domain's errors (`DuplicateFault`, `LockConflict`,
`ConcurrentUpdate`, `OutOfStock`). Reads of tickets come from `DynamoTicketReader`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.incident_keys import active_key
from aftercare.adapters.inventory import levels_from_items, part_key, routing_key, stock_keys
from aftercare.adapters.ticket_items import (
    dedup_key,
    intake_batch_get,
    last_resolution_key,
    lock_key,
    request_key,
    ticket_from_item,
    ticket_key,
)
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.adapters.ticket_writes import (
    change_error,
    classification_items,
    classify_error,
    concurrent_update,
    correlation_items,
    intake_error,
    open_ticket_items,
    parts_change_items,
    status_change_items,
)
from aftercare.adapters.transactions import transact
from aftercare.domain.parts import PartInfo, StockLevel
from aftercare.domain.ports import (
    ClassificationPlan,
    CorrelationPlan,
    CustomerRecord,
    DeviceRecord,
    IntakeContext,
    LastResolution,
    NewTicketPlan,
    OpenContext,
    OpenLock,
    PartsChange,
    RequestMark,
)
from aftercare.domain.tickets import StatusChange, Ticket, ticket_id_for


class DynamoTicketStore(DynamoTicketReader):
    """The ticket ports on DynamoDB: one BatchGetItem to read, one TransactWriteItems to change."""

    def __init__(
        self,
        *,
        tickets_table: str,
        devices_table: str,
        customers_table: str,
        inventory_table: str | None = None,
        incidents_table: str | None = None,
        ddb: Any | None = None,
    ) -> None:
        super().__init__(tickets_table=tickets_table, ddb=ddb)
        self.devices_table = devices_table
        self.customers_table = customers_table
        self.inventory_table = inventory_table
        self.incidents_table = incidents_table

    def load_intake_context(self, thing: str, fault_code: str, fault_id: str) -> IntakeContext:
        request = intake_batch_get(
            self.devices_table, self.tickets_table, thing, fault_code, fault_id
        )
        if self.incidents_table is not None:
            # the code's open incidents by model, in the same read (eventually consistent:
            # an incident opened a moment ago is seen by the next report)
            request["RequestItems"][self.incidents_table] = {
                "Keys": [to_item(active_key(fault_code))]
            }
        found = self._batch_get(request)
        active = found.get((self.incidents_table or "", active_key(fault_code)["pk"])) or {}
        device = found.get((self.devices_table, thing))
        lock = found.get((self.tickets_table, lock_key(thing, fault_code)["pk"]))
        last = found.get((self.tickets_table, last_resolution_key(thing, fault_code)["pk"]))
        marker = found.get((self.tickets_table, dedup_key(thing, fault_id)["pk"]))
        opened = found.get((self.tickets_table, ticket_key(ticket_id_for(thing, fault_id))["pk"]))
        seen = marker or opened
        return IntakeContext(
            device=DeviceRecord.model_validate(device) if device else None,
            lock=OpenLock.model_validate(lock) if lock else None,
            last_resolution=LastResolution.model_validate(last) if last else None,
            seen=seen is not None,
            seen_in_ticket=seen.get("ticket_id") if seen else None,
            active_incidents={k: str(v) for k, v in active.items() if k not in ("pk", "sk")},
        )

    def _batch_get(self, request: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        """Items by (table, partition key value); every table here has a unique pk per read."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for table, item in self._batch_get_tables(request):
            pk = item.get("pk") or item.get("thing") or item.get("customer_id")
            found[(table, str(pk))] = item
        return found

    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]:
        """Several tickets' records in BatchGetItem calls of up to 100 keys (a day's jobs)."""
        found: dict[str, Ticket] = {}
        unique = sorted(set(ticket_ids))
        for start in range(0, len(unique), 100):
            keys = [to_item(ticket_key(t)) for t in unique[start : start + 100]]
            request = {"RequestItems": {self.tickets_table: {"Keys": keys}}}
            for item in self._batch_get_raw(request):
                ticket = ticket_from_item(item)
                found[ticket.ticket_id] = ticket
        return found

    def _batch_get_raw(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        return [item for _, item in self._batch_get_tables(request)]

    def _batch_get_tables(self, request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        pending = request["RequestItems"]
        while pending:
            response = self.ddb.batch_get_item(RequestItems=pending)
            for table, items in response.get("Responses", {}).items():
                yield from ((table, from_item(raw)) for raw in items)
            pending = response.get("UnprocessedKeys") or {}

    def load_open_context(self, customer_id: str, region: str, skus: list[str]) -> OpenContext:
        if not skus or self.inventory_table is None:
            return OpenContext(customer=self.get_customer(customer_id))
        keys = [routing_key(region), *(part_key(sku) for sku in skus)]
        request = {
            self.customers_table: {"Keys": [{"customer_id": {"S": customer_id}}]},
            self.inventory_table: {"Keys": [to_item(k) for k in keys]},
        }
        found = self._batch_get({"RequestItems": request})
        customer = found.get((self.customers_table, customer_id))
        routing = found.get((self.inventory_table, routing_key(region)["pk"]), {})
        parts = {
            sku: PartInfo.model_validate(item)
            for sku in skus
            if (item := found.get((self.inventory_table, part_key(sku)["pk"])))
        }
        return OpenContext(
            customer=CustomerRecord.model_validate(customer) if customer else None,
            routing=list(routing.get("warehouses", [])),
            parts=parts,
        )

    def load_stock(
        self, keys: list[tuple[str, str]], shards: Mapping[str, int] | None = None
    ) -> dict[tuple[str, str], StockLevel]:
        """Every shard of each (sku, warehouse) in one consistent BatchGetItem (up to 100 keys
        a call), summed. Without `shards` (from the parts' master data, which intake has
        already read) it reads the parts' shard counts first: one request more."""
        if not keys or self.inventory_table is None:
            return {}
        counts = dict(shards) if shards is not None else self._shard_counts(keys)
        wanted = [to_item(k) for k in stock_keys(keys, counts)]
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), 100):
            request = {
                self.inventory_table: {"Keys": wanted[start : start + 100], "ConsistentRead": True}
            }
            found += self._batch_get_raw({"RequestItems": request})
        return levels_from_items(found)

    def _shard_counts(self, keys: list[tuple[str, str]]) -> dict[str, int]:
        skus = sorted({sku for sku, _ in keys})
        request = {str(self.inventory_table): {"Keys": [to_item(part_key(s)) for s in skus]}}
        parts = self._batch_get_raw({"RequestItems": request})
        return {p["sku"]: int(p.get("stock_shards", 1)) for p in parts if "sku" in p}

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        response = self.ddb.get_item(
            TableName=self.customers_table, Key={"customer_id": {"S": customer_id}}
        )
        item = response.get("Item")
        return CustomerRecord.model_validate(from_item(item)) if item else None

    def open_ticket(self, plan: NewTicketPlan) -> None:
        items = open_ticket_items(
            self.tickets_table, plan, self.inventory_table, self.incidents_table
        )
        transact(self.ddb, items, intake_error)

    def add_occurrence(self, plan: CorrelationPlan) -> None:
        transact(self.ddb, correlation_items(self.tickets_table, plan), intake_error)

    def apply_status_change(self, change: StatusChange) -> None:
        items = status_change_items(self.tickets_table, change, self.inventory_table)
        transact(self.ddb, items, concurrent_update)

    def apply_parts_change(self, change: PartsChange) -> None:
        if self.inventory_table is None:
            raise ValueError("parts changes need the inventory table")
        items = parts_change_items(self.tickets_table, self.inventory_table, change)
        transact(self.ddb, items, change_error)

    def load_request(self, scope: str, key: str) -> RequestMark | None:
        response = self.ddb.get_item(
            TableName=self.tickets_table,
            Key=to_item(request_key(scope, key)),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return RequestMark.model_validate(from_item(item)) if item else None

    def classify(self, plan: ClassificationPlan) -> None:
        items = classification_items(self.tickets_table, plan, self.inventory_table)
        transact(self.ddb, items, classify_error(plan))
