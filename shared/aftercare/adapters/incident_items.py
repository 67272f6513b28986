"""IncidentsTable items: keys and request builders (pure functions; shapes unit-tested).

Key layout (see the IncidentsTable comment in template.yaml for the access patterns and the
write arithmetic):

    STORM#<model>#<group>#<window>#<shard> / COUNT  windowed storm counter shard (TTL); <group>
                                                    is `code=<code>` or `category=<category>`
    ACTIVE#<code>                         / ACTIVE  model -> open incident (one attribute each;
                                                    a category incident names each code it covers;
                                                    split per firmware: <model>@<firmware>)
    INCIDENT#<id>                         / META    the incident record (`by_opened` lists them)
    INCSTAT#<id>#<shard>                  / STATS   the incident's counters, one item per shard
    INCIDENT#<id>#C<shard>                / CHILD#<ticket_id>  a child ticket's link
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftercare.adapters.aws import from_item, to_attr, to_item
from aftercare.adapters.incident_keys import active_key, link_put
from aftercare.adapters.ticket_items import ticket_key, timeline_item
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    ChildFacts,
    Incident,
    IncidentStats,
    IncidentStatus,
    minute_of,
)
from aftercare.domain.ports.incidents import CounterShard
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TimelineEntry

LISTING = "INCIDENT"
TREND_PREFIX = "t_"
BACKORDER_PREFIX = "bo_"
META = "META"


def counter_key(item: CounterShard) -> dict[str, str]:
    return {
        "pk": f"STORM#{item.model}#{item.group}#{item.window}#{item.shard}",
        "sk": "COUNT",
    }


def incident_key(incident_id: str) -> dict[str, str]:
    return {"pk": f"INCIDENT#{incident_id}", "sk": META}


def stats_key(incident_id: str, shard: int) -> dict[str, str]:
    return {"pk": f"INCSTAT#{incident_id}#{shard}", "sk": "STATS"}


def count_update(table: str, item: CounterShard, ticket_id: str, expires_at: int) -> dict[str, Any]:
    """One new ticket on a counter shard: count it and remember which ticket it was (for
    linking the tickets opened before the threshold). The shard stops growing when the
    incident opens (children count on the incident), so its ticket set stays small."""
    return {
        "TableName": table,
        "Key": to_item(counter_key(item)),
        "UpdateExpression": "ADD n :one, tickets :ticket SET expires_at = :exp",
        "ExpressionAttributeValues": {
            ":one": {"N": "1"},
            ":ticket": {"SS": [ticket_id]},
            ":exp": {"N": str(expires_at)},
        },
        "ReturnValues": "UPDATED_NEW",
    }


def reset_update(table: str, item: CounterShard) -> dict[str, Any]:
    """A counter shard back to zero, only if it exists (no empty items are created)."""
    return {
        "TableName": table,
        "Key": to_item(counter_key(item)),
        "UpdateExpression": "SET n = :zero REMOVE tickets",
        "ConditionExpression": "attribute_exists(pk)",
        "ExpressionAttributeValues": {":zero": {"N": "0"}},
    }


def open_items(table: str, incident: Incident) -> list[dict[str, Any]]:
    """The incident record and the (model, code) pointer of each code it covers, all only if
    new (an incident open for any of those codes cancels the opening)."""
    record = {
        **incident_key(incident.incident_id),
        **incident.model_dump(mode="json"),
        "listing": LISTING,
    }
    put = {
        "Put": {
            "TableName": table,
            "Item": to_item(record),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    return [put] + [
        {
            "Update": {
                "TableName": table,
                "Key": to_item(active_key(code)),
                "UpdateExpression": "SET #model = :id",
                "ConditionExpression": "attribute_not_exists(#model)",
                "ExpressionAttributeNames": {"#model": incident.pointer},
                "ExpressionAttributeValues": {":id": {"S": incident.incident_id}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        for code in incident.covered_codes
    ]


def join_update(table: str, facts: ChildFacts, *, earlier: bool = False) -> dict[str, Any]:
    """A child on its incident's shard: counters, firmware and region sets, the minute's trend
    bucket, backorder demand per SKU; returns the shard's count of joined children."""
    names = {"#trend": f"{TREND_PREFIX}{minute_of(facts.seen_at)}"}
    values: dict[str, Any] = {
        ":one": {"N": "1"},
        ":fw": {"SS": [facts.firmware]},
        ":rg": {"SS": [facts.region]},
        ":at": to_attr(facts.seen_at.isoformat()),
    }
    adds = ["children :one", "#trend :one", "firmware_versions :fw", "regions :rg"]
    # `joined` counts the children that joined while the incident was open: its value decides
    # their diagnostics sample; the tickets linked from before the threshold count apart
    adds.append("linked_before :one" if earlier else "joined :one")
    if facts.held:
        adds.append("reservations_held :held")
        values[":held"] = {"N": str(facts.held)}
    if facts.avoided:
        adds.append("reservations_avoided :avoided")
        values[":avoided"] = {"N": str(len(facts.avoided))}
    for n, (sku, qty) in enumerate(sorted(facts.avoided.items())):
        names[f"#bo{n}"] = f"{BACKORDER_PREFIX}{sku}"
        values[f":bo{n}"] = {"N": str(qty)}
        adds.append(f"#bo{n} :bo{n}")
    return {
        "TableName": table,
        "Key": to_item(stats_key(facts.incident_id, facts.shard)),
        "UpdateExpression": "ADD "
        + ", ".join(adds)
        + " SET first_seen = if_not_exists(first_seen, :at), last_seen = :at",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "UPDATED_NEW",
    }


def message_update(table: str, incident_id: str, shard: int, *, saved: int, sent: int) -> dict:
    """Messages the incident sent and saved (the notifier's count, per shard)."""
    return {
        "TableName": table,
        "Key": to_item(stats_key(incident_id, shard)),
        "UpdateExpression": "ADD messages_sent :sent, messages_saved :saved",
        "ExpressionAttributeValues": {":sent": {"N": str(sent)}, ":saved": {"N": str(saved)}},
    }


def stats_from_item(item: dict[str, Any]) -> IncidentStats:
    """One shard item as counters (the sum of the shards is the incident's statistics)."""
    plain = from_item(item)
    trend = {
        k.removeprefix(TREND_PREFIX): int(v) for k, v in plain.items() if k.startswith(TREND_PREFIX)
    }
    backorder = {
        k.removeprefix(BACKORDER_PREFIX): int(v)
        for k, v in plain.items()
        if k.startswith(BACKORDER_PREFIX)
    }
    return IncidentStats.model_validate(
        {
            **{k: v for k, v in plain.items() if k in IncidentStats.model_fields},
            "trend": trend,
            "backorder": backorder,
        }
    )


def link_earlier_items(
    table: str, tickets_table: str, ticket: Ticket, *, incident_id: str, shard: int, at: datetime
) -> list[dict[str, Any]]:
    """A ticket opened before its incident, linked: the ticket's `incident_id` (only if it has
    none; its version moves on), a timeline entry, the child link (only if new) and the
    statistics shard (its parts were decided on the normal path: not counted here)."""
    link = IncidentLink(
        incident_id=incident_id,
        ticket_id=ticket.ticket_id,
        thing=ticket.thing,
        customer_id=ticket.customer_id,
        region=ticket.region,
        firmware=ticket.firmware,
        shard=shard,
        linked_at=at,
        before_threshold=True,
    )
    facts = ChildFacts(
        incident_id=incident_id,
        ticket_id=ticket.ticket_id,
        thing=ticket.thing,
        customer_id=ticket.customer_id,
        region=ticket.region,
        firmware=ticket.firmware,
        seen_at=ticket.opened_at,
        shard=shard,
    )
    stats = join_update(table, facts, earlier=True)
    stats.pop("ReturnValues")
    entry = TimelineEntry(
        at=at,
        kind="incident_linked",
        actor="fault-intake",
        detail={"incident_id": incident_id, "linked": "opened before the storm threshold"},
    )
    return [
        {
            "Update": {
                "TableName": tickets_table,
                "Key": to_item(ticket_key(ticket.ticket_id)),
                "UpdateExpression": "SET incident_id = :id, version = version + :one",
                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(incident_id)",
                "ExpressionAttributeValues": {":id": to_attr(incident_id), ":one": {"N": "1"}},
            }
        },
        {
            "Put": {
                "TableName": tickets_table,
                "Item": to_item(timeline_item(ticket.ticket_id, entry)),
            }
        },
        link_put(table, link),
        {"Update": stats},
    ]


def status_items(table: str, incident: Incident, expected: IncidentStatus) -> list[dict[str, Any]]:
    """The changed incident, put only if its status is still `expected`; resolving it also
    removes its (model, code) pointers (each only if it still names this incident)."""
    record = {**incident_key(incident.incident_id), **incident.model_dump(mode="json")}
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": table,
                "Item": to_item({**record, "listing": LISTING}),
                "ConditionExpression": "#status = :expected",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":expected": to_attr(expected.value)},
            }
        }
    ]
    if incident.status is IncidentStatus.RESOLVED:
        items += [
            {
                "Update": {
                    "TableName": table,
                    "Key": to_item(active_key(code)),
                    "UpdateExpression": "REMOVE #model",
                    "ConditionExpression": "#model = :id",
                    "ExpressionAttributeNames": {"#model": incident.pointer},
                    "ExpressionAttributeValues": {":id": to_attr(incident.incident_id)},
                }
            }
            for code in incident.covered_codes
        ]
    return items


def page_items(table: str, incident: Incident, pages_done_before: int) -> list[dict[str, Any]]:
    """A campaign page's counts and cursor on the incident (the whole record, as
    `status_items`), only while it is `mitigating` with `pages_done_before` pages recorded: a
    redelivered page that was recorded already fails the condition and counts nothing."""
    items = status_items(table, incident, IncidentStatus.MITIGATING)
    put = items[0]["Put"]
    put["ConditionExpression"] += " AND #campaign.#pages = :pages"
    put["ExpressionAttributeNames"] |= {"#campaign": "campaign", "#pages": "pages_done"}
    put["ExpressionAttributeValues"] |= {":pages": to_attr(pages_done_before)}
    return items
