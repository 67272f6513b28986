"""Fleet-incident fix campaigns: their progress on IncidentsTable (child links walked a page
at a time, each page's counts stored conditionally) and their queue on SQS."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_item
from aftercare.adapters.incident_items import page_items
from aftercare.adapters.incident_keys import children_pk, link_key
from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import CampaignCursor, CampaignPage, Incident
from aftercare.domain.ports.campaigns import CampaignNotQueued, ChildrenPage


class DynamoCampaignStore(DynamoIncidentStore):
    """The campaign worker's port on IncidentsTable: the incident ports plus the page walk and
    the per-page conditional write."""

    def children_page(
        self, incident_id: str, cursor: CampaignCursor, limit: int, shards: int
    ) -> ChildrenPage:
        """The next `limit` child links from `cursor`, shard by shard in ticket id order (each
        shard's links are one partition sorted by `CHILD#<ticket_id>`)."""
        links: list[IncidentLink] = []
        shard, after = cursor.shard, cursor.after
        while shard < shards:
            found, more = self._children_from(incident_id, shard, after, limit - len(links))
            links += found
            if more and found:
                after = found[-1].ticket_id
                if len(links) >= limit:
                    return ChildrenPage(links, CampaignCursor(shard=shard, after=after))
                continue
            shard, after = shard + 1, None
            if len(links) >= limit:
                break
        return ChildrenPage(links, CampaignCursor(shard=shard) if shard < shards else None)

    def _children_from(
        self, incident_id: str, shard: int, after: str | None, limit: int
    ) -> tuple[list[IncidentLink], bool]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": children_pk(incident_id, shard)}},
            "ConsistentRead": True,
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = to_item(link_key(incident_id, shard, after))
        response = self.ddb.query(**kwargs)
        found = [IncidentLink.model_validate(from_item(i)) for i in response.get("Items", [])]
        return found, "LastEvaluatedKey" in response

    def record_page(self, incident: Incident, pages_done_before: int) -> None:
        """Store the incident with one more campaign page counted, only while it is
        `mitigating` with `pages_done_before` pages recorded (else IncidentMoved)."""
        self._write_unless_moved(page_items(self.table, incident, pages_done_before), incident)


class SqsCampaignQueue:
    """Queues a campaign page for the campaign worker (IncidentCampaignFunction).

    No DelaySeconds: a page paces its own sends (see the worker's handler), so the next page is
    due as soon as the previous one is recorded."""

    sqs = LazyClient("sqs")

    def __init__(self, *, queue_url: str, sqs: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    def enqueue(self, page: CampaignPage) -> None:
        try:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=page.model_dump_json())
        except (ClientError, BotoCoreError) as exc:
            raise CampaignNotQueued(f"{page.campaign_id} page {page.page}: {exc}") from exc
