"""IncidentsTable keys and a child ticket's link item (layout in `incident_items`): what the
ticket store and the ticket writes need, without the incident rules' models that the other
incident items are built from."""

from __future__ import annotations

from typing import Any

from aftercare.adapters.aws import to_item
from aftercare.domain.incident_links import IncidentLink


def active_key(code: str) -> dict[str, str]:
    return {"pk": f"ACTIVE#{code}", "sk": "ACTIVE"}


def children_pk(incident_id: str, shard: int) -> str:
    return f"INCIDENT#{incident_id}#C{shard}"


def link_key(incident_id: str, shard: int, ticket_id: str) -> dict[str, str]:
    return {"pk": children_pk(incident_id, shard), "sk": f"CHILD#{ticket_id}"}


def link_item(link: IncidentLink) -> dict[str, Any]:
    return {
        **link_key(link.incident_id, link.shard, link.ticket_id),
        **link.model_dump(mode="json"),
    }


def link_put(table: str, link: IncidentLink) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(link_item(link)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
