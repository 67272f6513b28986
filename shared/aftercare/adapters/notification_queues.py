"""Bundles and due queues on NotificationsTable (see `notification_items` for the keys)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.notification_items import (
    CLAIM_LIMIT,
    CLAIM_PAGE,
    WAITING,
    bundle_key,
    claim_update,
    from_ms,
    is_conditional_failure,
    ms,
    notification_key,
    release_update,
    survey_item,
    survey_key,
    values_of,
)
from aftercare.adapters.notification_ledger import NotificationTable
from aftercare.domain.notifications import (
    Bundle,
    Notification,
    NotificationRef,
    Survey,
)


class DynamoBundles(NotificationTable):
    """Bundles: a customer's digest window and the messages waiting in it."""

    def open_window(self, customer_id: str, now: datetime, until: datetime) -> datetime | None:
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=to_item(bundle_key(customer_id)),
                UpdateExpression="SET window_ms = :until, customer_id = :cid",
                ConditionExpression="attribute_not_exists(window_ms) OR window_ms <= :now",
                ExpressionAttributeValues=values_of(until=ms(until), now=ms(now), cid=customer_id),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise
            old = from_item(dict(exc.response.get("Item") or {}))  # type: ignore[call-overload]
            return from_ms(old["window_ms"]) if "window_ms" in old else until
        return None

    def add_to_bundle(self, customer_id: str, ref: NotificationRef, due_at: datetime) -> None:
        key = to_item(bundle_key(customer_id))
        members = {":m": {"SS": [ref.token()]}}
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=(
                    "ADD members :m SET due_queue = :queue, due_ms = :due_ms, "
                    "due_at = :due_at, customer_id = :cid"
                ),
                ConditionExpression="attribute_not_exists(due_queue) OR due_ms > :due_ms",
                ExpressionAttributeValues=members
                | values_of(
                    queue="digest", due_ms=ms(due_at), due_at=due_at.isoformat(), cid=customer_id
                ),
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise
            # Already due earlier: join it (the earlier due time stands).
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="ADD members :m SET due_queue = :queue",
                ExpressionAttributeValues=members | values_of(queue="digest"),
            )

    def finish_bundle(
        self,
        customer_id: str,
        sent: Sequence[NotificationRef],
        *,
        window_until: datetime | None,
        retry_at: datetime | None = None,
    ) -> None:
        key = to_item(bundle_key(customer_id))
        if retry_at is not None:
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET due_ms = :due_ms, due_at = :due_at ADD tries :one "
                "REMOVE lease_ms",
                ExpressionAttributeValues=values_of(
                    due_ms=ms(retry_at), due_at=retry_at.isoformat(), one=1
                ),
            )
            return
        remaining = self._remove_members(key, sent, window_until)
        if remaining:
            # Joined while we were sending: they go at the end of the new window.
            due = window_until or datetime.now(UTC)
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET due_ms = :due_ms, due_at = :due_at, due_queue = :queue",
                ExpressionAttributeValues=values_of(
                    due_ms=ms(due), due_at=due.isoformat(), queue="digest"
                ),
            )

    def _remove_members(
        self, key: dict[str, Any], sent: Sequence[NotificationRef], window_until: datetime | None
    ) -> list[str]:
        sets = ["tries = :zero"] + (["window_ms = :window"] if window_until else [])
        values = values_of(zero=0, **({"window": ms(window_until)} if window_until else {}))
        expression = "SET " + ", ".join(sets) + " REMOVE lease_ms, due_queue, due_ms"
        if sent:
            expression += " DELETE members :sent"
            values[":sent"] = {"SS": sorted({r.token() for r in sent})}
        response = self.ddb.update_item(
            TableName=self.table,
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return list(from_item(response.get("Attributes", {})).get("members") or [])


class DynamoDueQueues(NotificationTable):
    """DueQueues: what has come due (sparse index by_due), leased with conditional updates."""

    def claim_due_notifications(self, now: datetime, lease_until: datetime) -> list[Notification]:
        items = self._claim("event", now, lease_until)
        return [Notification.model_validate(i) for i in items if i.get("state") in WAITING]

    def claim_due_bundles(self, now: datetime, lease_until: datetime) -> list[Bundle]:
        return [
            Bundle(
                customer_id=i["customer_id"],
                members=[NotificationRef.parse(t) for t in i.get("members") or []],
                due_at=from_ms(i["due_ms"]),
                tries=int(i.get("tries", 0)),
            )
            for i in self._claim("digest", now, lease_until)
        ]

    def claim_due_surveys(self, now: datetime, lease_until: datetime) -> list[Survey]:
        return [Survey.model_validate(i) for i in self._claim("survey", now, lease_until)]

    def _claim(self, queue: str, now: datetime, lease_until: datetime) -> list[dict[str, Any]]:
        """Up to CLAIM_LIMIT due items of `queue`, each leased with a conditional update."""
        claimed: list[dict[str, Any]] = []
        for key in self._due_keys(queue, now):
            try:
                updated = self.ddb.update_item(
                    TableName=self.table, **claim_update(queue, key, now, lease_until)
                )
            except ClientError as exc:
                if is_conditional_failure(exc):
                    continue  # someone else took it, or it was sent meanwhile
                raise
            claimed.append(from_item(updated["Attributes"]))
            if len(claimed) >= CLAIM_LIMIT:
                break
        return claimed

    def release(
        self,
        lease_until: datetime,
        *,
        notifications: Sequence[NotificationRef] = (),
        customers: Sequence[str] = (),
        surveys: Sequence[str] = (),
    ) -> None:
        keys = [
            *(notification_key(r) for r in notifications),
            *(bundle_key(c) for c in customers),
            *(survey_key(s) for s in surveys),
        ]
        for key in keys:
            try:
                self.ddb.update_item(
                    TableName=self.table, **release_update(to_item(key), lease_until)
                )
            except ClientError as exc:
                if not is_conditional_failure(exc):
                    raise  # a lease no longer ours (or the item settled) is nothing to give back

    def _due_keys(self, queue: str, now: datetime) -> Iterator[dict[str, Any]]:
        """Keys of due items whose lease (if any) has run out, oldest due first."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_due",
            "KeyConditionExpression": "due_queue = :queue AND due_ms <= :now",
            "FilterExpression": "attribute_not_exists(lease_ms) OR lease_ms <= :now",
            "ExpressionAttributeValues": values_of(queue=queue, now=ms(now)),
            "Limit": CLAIM_PAGE,
        }
        while True:
            response = self.ddb.query(**request)
            for item in response.get("Items", []):
                yield {"pk": item["pk"], "sk": item["sk"]}
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class DynamoSurveySchedule(NotificationTable):
    """SurveySchedule: a survey item per resolved ticket, in the survey due queue until sent."""

    def schedule_survey(self, survey: Survey) -> bool:
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=to_item(survey_item(survey)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def settle_survey(
        self, survey_id: str, status: str, *, sent_at: datetime | None, retry_at: datetime | None
    ) -> None:
        names = {"#status": "status"}
        if retry_at is not None:
            expression = (
                "SET #status = :status, due_at = :due_at, due_ms = :due_ms ADD tries :one "
                "REMOVE lease_ms"
            )
            values = values_of(
                status=status, due_at=retry_at.isoformat(), due_ms=ms(retry_at), one=1
            )
        else:
            sets = ["#status = :status"] + (["sent_at = :sent_at"] if sent_at else [])
            expression = "SET " + ", ".join(sets) + " REMOVE due_queue, due_ms, lease_ms"
            extra = {"sent_at": sent_at.isoformat()} if sent_at else {}
            values = values_of(status=status, **extra)
        self.ddb.update_item(
            TableName=self.table,
            Key=to_item(survey_key(survey_id)),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
