"""The adapters for one stack (`Target`): every table the CLI, the demo and the smoke test
read or write, they reach through these."""

from __future__ import annotations

from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.notification_reports import NotificationReports
from aftercare.adapters.ownership import DynamoOwnershipStore
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.adapters.registry import DynamoDeviceRegistry

from infra.target import Target


def store_of(target: Target) -> DynamoTicketStore:
    return DynamoTicketStore(
        tickets_table=target.resource("TicketsTable"),
        devices_table=target.resource("DevicesTable"),
        customers_table=target.resource("CustomersTable"),
        inventory_table=target.resources.get("InventoryTable"),
        ddb=target.client("dynamodb"),
    )


def diagnostics_store_of(target: Target) -> DynamoDiagnosticsStore:
    return DynamoDiagnosticsStore(
        tickets_table=target.resource("TicketsTable"),
        inventory_table=target.resources.get("InventoryTable"),
        ddb=target.client("dynamodb"),
    )


def registry_of(target: Target) -> DynamoDeviceRegistry:
    return DynamoDeviceRegistry(
        devices_table=target.resource("DevicesTable"),
        customers_table=target.resource("CustomersTable"),
        ddb=target.client("dynamodb"),
    )


def ownership_store_of(target: Target) -> DynamoOwnershipStore:
    return DynamoOwnershipStore(
        claims_table=target.resource("ClaimsTable"),
        devices_table=target.resource("DevicesTable"),
        customers_table=target.resource("CustomersTable"),
        ddb=target.client("dynamodb"),
    )


def parked_store_of(target: Target, *, with_bucket: bool = False) -> DynamoParkedStore:
    return DynamoParkedStore(
        table=target.resource("ParkedTable"),
        ddb=target.client("dynamodb"),
        s3=target.client("s3") if with_bucket else None,
    )


def notification_store_of(target: Target) -> NotificationReports:
    return NotificationReports(
        table=target.resource("NotificationsTable"), ddb=target.client("dynamodb")
    )
