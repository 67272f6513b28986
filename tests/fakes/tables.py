"""template.yaml's own tables, created on moto, so tests cannot drift from the infrastructure,
and the ticket store over tables a test has provisioned."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aftercare.adapters.dynamodb import DynamoTicketStore

from infra.local.provision_stores import create_table_request
from infra.local.template import Resolver, load_template, parameter_values, pseudo_parameters
from tests.fakes.aws import REGION, ROOT


def create_template_tables(ddb: Any, logical_ids: Iterable[str], stage: str = "test") -> None:
    """Create the named template resources (tables `aftercare-<name>-<stage>`) with `ddb`."""
    template = load_template(ROOT / "template.yaml")
    resolver = Resolver(
        parameter_values(template, {"Stage": stage}), pseudo_parameters(REGION, stage), {}
    )
    for logical_id in logical_ids:
        properties = resolver.resolve(template.resources[logical_id].properties)
        ddb.create_table(**create_table_request(properties, logical_id))


def ticket_store(resources: Mapping[str, str], ddb: Any) -> DynamoTicketStore:
    """The ticket store on provisioned tables (`resources`: logical id -> table name)."""
    return DynamoTicketStore(
        tickets_table=resources["TicketsTable"],
        devices_table=resources["DevicesTable"],
        customers_table=resources["CustomersTable"],
        inventory_table=resources["InventoryTable"],
        ddb=ddb,
    )
