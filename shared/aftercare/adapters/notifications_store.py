"""DynamoDB adapter for notifications, bundles, surveys, follow-ups and CSAT.

Key layout (see the NotificationsTable comment in template.yaml):

    TICKET#<id>   / EVENT#<kind>             one (ticket, event kind): dedup marker + state
    TICKET#<id>   / ATT#<at>#<msg>#<n>       one delivery attempt (the notification log)
    CUSTOMER#<id> / BUNDLE                   digest window + messages waiting for the customer
    SURVEY#<id>   / SURVEY                   a survey: due time, status, the one answer
    FOLLOWUPS     / <at>#<survey_id>         a follow-up task for managers (rating 1-2)
    STATS         / CSAT                     answer counters (answered, satisfied, r1..r5)

Items waiting to be sent carry `due_queue` (event|digest|survey) and `due_ms`, the keys of the
sparse `by_due` index the scheduled sweep queries; `lease_ms` keeps two senders apart.
Attempts carry `attempt_key`, the sort key of the sparse `by_customer` index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.dynamodb import timeline_item
from aftercare.domain.notifications import (
    AttemptRecord,
    Bundle,
    Notification,
    NotificationRef,
    NotificationState,
    Survey,
)
from aftercare.domain.preferences import NotificationProfile
from aftercare.domain.surveys import AlreadyAnswered, Csat, FollowUp, SurveyAnswer
from aftercare.domain.tickets import TimelineEntry

RETENTION: Final = timedelta(days=400)
BATCH_WRITE: Final = 25
BATCH_GET: Final = 100
CLAIM_PAGE: Final = 100
# Per queue and sweep: a morning's quiet-hours flush drains over a few sweeps, within the timeout.
CLAIM_LIMIT: Final = 300
WAITING = (
    NotificationState.PENDING.value,
    NotificationState.DEFERRED.value,
    NotificationState.DIGESTED.value,
)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(value: int | float) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def notification_key(ref: NotificationRef) -> dict[str, str]:
    return {"pk": f"TICKET#{ref.ticket_id}", "sk": f"EVENT#{ref.kind.value}"}


def bundle_key(customer_id: str) -> dict[str, str]:
    return {"pk": f"CUSTOMER#{customer_id}", "sk": "BUNDLE"}


def survey_key(survey_id: str) -> dict[str, str]:
    return {"pk": f"SURVEY#{survey_id}", "sk": "SURVEY"}


CSAT_KEY: Final = {"pk": "STATS", "sk": "CSAT"}


def _expiry(moment: datetime) -> int:
    return int((moment + RETENTION).timestamp())


def notification_item(n: Notification, lease_until: datetime) -> dict[str, Any]:
    return {
        **notification_key(n.ref),
        **n.model_dump(mode="json"),
        "due_queue": "event",
        "due_ms": ms(n.due_at),
        "lease_ms": ms(lease_until),
        "expires_at": _expiry(n.created_at),
    }


def settled_item(n: Notification) -> dict[str, Any]:
    """A notification as decided: back in the due queue only when pending (a retry)."""
    item = {
        **notification_key(n.ref),
        **n.model_dump(mode="json"),
        "expires_at": _expiry(n.created_at),
    }
    if n.state is NotificationState.PENDING:
        item |= {"due_queue": "event", "due_ms": ms(n.due_at)}
    return item


def attempt_items(record: AttemptRecord, index: int) -> dict[str, Any]:
    at = record.at.isoformat()
    suffix = f"{at}#{record.message_id}#{index:03d}"
    return {
        "pk": f"TICKET#{record.ticket_id}",
        "sk": f"ATT#{suffix}",
        **record.model_dump(mode="json"),
        "attempt_key": f"{at}#{record.ticket_id}#{record.message_id}#{index:03d}",
        "expires_at": _expiry(record.at),
    }


def timeline_entry(record: AttemptRecord) -> TimelineEntry:
    detail: dict[str, Any] = {
        "notification": record.kind,
        "status": record.status.value,
        "channel": record.channel,
        "language": record.language,
        "reason": record.reason,
        "message_id": record.message_id,
    }
    if record.digest_size:
        detail["digest_of"] = record.digest_size
    if record.customer_pays is not None:
        detail["customer_pays"] = str(record.customer_pays)
    return TimelineEntry(
        at=record.at,
        kind="notification",
        actor="notifier",
        detail={k: v for k, v in detail.items() if v is not None},
    )


def survey_item(survey: Survey) -> dict[str, Any]:
    return {
        **survey_key(survey.survey_id),
        **survey.model_dump(mode="json"),
        "due_queue": "survey",
        "due_ms": ms(survey.due_at),
    }


def release_update(key: dict[str, Any], lease_until: datetime) -> dict[str, Any]:
    """Drop this sender's lease on one item (and nobody else's: the lease must be ours)."""
    return {
        "Key": key,
        "UpdateExpression": "REMOVE lease_ms",
        "ConditionExpression": "lease_ms = :lease",
        "ExpressionAttributeValues": _values(lease=ms(lease_until)),
    }


def _values(**values: Any) -> dict[str, Any]:
    return {f":{k}": to_attr(v) for k, v in values.items()}


def claim_update(queue: str, key: dict[str, Any], now: datetime, lease: datetime) -> dict[str, Any]:
    """Lease one due item to this sender, unless another holds a live lease on it."""
    return {
        "Key": key,
        "UpdateExpression": "SET lease_ms = :lease",
        "ConditionExpression": (
            "due_queue = :queue AND due_ms <= :now "
            "AND (attribute_not_exists(lease_ms) OR lease_ms <= :now)"
        ),
        "ExpressionAttributeValues": _values(queue=queue, now=ms(now), lease=ms(lease)),
        "ReturnValues": "ALL_NEW",
    }


def answer_transaction(
    table: str,
    tickets_table: str,
    *,
    survey: Survey,
    answer: SurveyAnswer,
    at: datetime,
    follow_up: FollowUp | None,
) -> dict[str, Any]:
    """Answer once (condition first, index 0), count it, open the follow-up, note the ticket."""
    sets = ["rating = :rating", "answered_at = :at", "#status = :answered"]
    values: dict[str, Any] = {
        "rating": answer.rating,
        "at": at.isoformat(),
        "answered": "answered",
        "cid": survey.customer_id,
    }
    if answer.comment:
        sets.append("#comment = :comment")
        values["comment"] = answer.comment
    names = {"#status": "status"} | ({"#comment": "comment"} if answer.comment else {})
    satisfied = 1 if answer.rating >= 4 else 0
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": table,
                "Key": to_item(survey_key(survey.survey_id)),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": "customer_id = :cid AND attribute_not_exists(rating)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _values(**values),
            }
        },
        {
            "Update": {
                "TableName": table,
                "Key": to_item(CSAT_KEY),
                "UpdateExpression": f"ADD answered :one, satisfied :sat, r{answer.rating} :one",
                "ExpressionAttributeValues": _values(one=1, sat=satisfied),
            }
        },
    ]
    detail: dict[str, Any] = {"survey_id": survey.survey_id, "rating": answer.rating}
    if follow_up is not None:
        items.append({"Put": {"TableName": table, "Item": to_item(followup_item(follow_up))}})
        detail["follow_up"] = True
    entry = TimelineEntry(at=at, kind="survey_answered", actor=survey.customer_id, detail=detail)
    items.append(
        {
            "Put": {
                "TableName": tickets_table,
                "Item": to_item(timeline_item(survey.ticket_id, entry)),
            }
        }
    )
    return {"TransactItems": items}


def followup_item(follow_up: FollowUp) -> dict[str, Any]:
    return {
        "pk": "FOLLOWUPS",
        "sk": f"{follow_up.created_at.isoformat()}#{follow_up.survey_id}",
        **follow_up.model_dump(mode="json"),
    }


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoNotificationStore:
    """NotificationStore and SurveyStore on DynamoDB (plus the listings the CLI reads)."""

    def __init__(
        self,
        *,
        table: str,
        tickets_table: str,
        customers_table: str,
        ddb: Any | None = None,
    ) -> None:
        self.table = table
        self.tickets_table = tickets_table
        self.customers_table = customers_table
        self._ddb = ddb
        self._profiles: dict[str, NotificationProfile | None] = {}

    ddb = LazyClient("dynamodb")

    # ------------------------------------------------------------------ profiles

    def prefetch_profiles(self, customer_ids: Sequence[str]) -> None:
        self._profiles = {}
        for start in range(0, len(customer_ids), BATCH_GET):
            keys = [{"customer_id": {"S": c}} for c in customer_ids[start : start + BATCH_GET]]
            pending: dict[str, Any] = {self.customers_table: {"Keys": keys}}
            while pending:
                response = self.ddb.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(self.customers_table, []):
                    profile = NotificationProfile.model_validate(from_item(raw))
                    self._profiles[profile.customer_id] = profile
                pending = response.get("UnprocessedKeys") or {}
        for customer_id in customer_ids:
            self._profiles.setdefault(customer_id, None)

    def get_profile(self, customer_id: str) -> NotificationProfile | None:
        if customer_id in self._profiles:
            return self._profiles[customer_id]
        item = self.ddb.get_item(
            TableName=self.customers_table, Key={"customer_id": {"S": customer_id}}
        ).get("Item")
        return NotificationProfile.model_validate(from_item(item)) if item else None

    # ------------------------------------------------------------------ notifications

    def create(self, notification: Notification, lease_until: datetime) -> bool:
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=to_item(notification_item(notification, lease_until)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def get_many(self, refs: Sequence[NotificationRef]) -> list[Notification]:
        keys = [to_item(notification_key(r)) for r in dict.fromkeys(refs)]
        found: list[Notification] = []
        for start in range(0, len(keys), BATCH_GET):
            pending: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + BATCH_GET], "ConsistentRead": True}
            }
            while pending:
                response = self.ddb.batch_get_item(RequestItems=pending)
                found += [
                    Notification.model_validate(from_item(i))
                    for i in response.get("Responses", {}).get(self.table, [])
                ]
                pending = response.get("UnprocessedKeys") or {}
        order = {r.token(): n for n, r in enumerate(refs)}
        return sorted(found, key=lambda n: order.get(n.ref.token(), 0))

    # ------------------------------------------------------------------ bundles

    def open_window(self, customer_id: str, now: datetime, until: datetime) -> datetime | None:
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=to_item(bundle_key(customer_id)),
                UpdateExpression="SET window_ms = :until, customer_id = :cid",
                ConditionExpression="attribute_not_exists(window_ms) OR window_ms <= :now",
                ExpressionAttributeValues=_values(until=ms(until), now=ms(now), cid=customer_id),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
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
                | _values(
                    queue="digest", due_ms=ms(due_at), due_at=due_at.isoformat(), cid=customer_id
                ),
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            # Already due earlier: join it (the earlier due time stands).
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="ADD members :m SET due_queue = :queue",
                ExpressionAttributeValues=members | _values(queue="digest"),
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
                ExpressionAttributeValues=_values(
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
                ExpressionAttributeValues=_values(
                    due_ms=ms(due), due_at=due.isoformat(), queue="digest"
                ),
            )

    def _remove_members(
        self, key: dict[str, Any], sent: Sequence[NotificationRef], window_until: datetime | None
    ) -> list[str]:
        sets = ["tries = :zero"] + (["window_ms = :window"] if window_until else [])
        values = _values(zero=0, **({"window": ms(window_until)} if window_until else {}))
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

    # ------------------------------------------------------------------ due queues

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
                if _is_conditional_failure(exc):
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
                if not _is_conditional_failure(exc):
                    raise  # a lease no longer ours (or the item settled) is nothing to give back

    def _due_keys(self, queue: str, now: datetime) -> Iterator[dict[str, Any]]:
        """Keys of due items whose lease (if any) has run out, oldest due first."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_due",
            "KeyConditionExpression": "due_queue = :queue AND due_ms <= :now",
            "FilterExpression": "attribute_not_exists(lease_ms) OR lease_ms <= :now",
            "ExpressionAttributeValues": _values(queue=queue, now=ms(now)),
            "Limit": CLAIM_PAGE,
        }
        while True:
            response = self.ddb.query(**request)
            for item in response.get("Items", []):
                yield {"pk": item["pk"], "sk": item["sk"]}
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------ attempts

    def record(
        self, attempts: Sequence[AttemptRecord], settled: Sequence[Notification] = ()
    ) -> None:
        # One BatchWriteItem (per 25 items) for everything. The settled notifications are
        # whole-item puts without conditions: they are leased to this sender (or just created
        # by it), so nobody else writes them meanwhile.
        requests: list[tuple[str, dict[str, Any]]] = [
            (self.table, settled_item(n)) for n in settled
        ]
        for index, record in enumerate(attempts):
            requests.append((self.table, attempt_items(record, index)))
            entry = timeline_item(record.ticket_id, timeline_entry(record))
            requests.append((self.tickets_table, entry))
        for start in range(0, len(requests), BATCH_WRITE):
            chunk: dict[str, list[dict[str, Any]]] = {}
            for table, item in requests[start : start + BATCH_WRITE]:
                chunk.setdefault(table, []).append({"PutRequest": {"Item": to_item(item)}})
            pending: dict[str, Any] = chunk
            while pending:
                pending = (
                    self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                )

    # ------------------------------------------------------------------ surveys

    def schedule_survey(self, survey: Survey) -> bool:
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=to_item(survey_item(survey)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
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
            values = _values(status=status, due_at=retry_at.isoformat(), due_ms=ms(retry_at), one=1)
        else:
            sets = ["#status = :status"] + (["sent_at = :sent_at"] if sent_at else [])
            expression = "SET " + ", ".join(sets) + " REMOVE due_queue, due_ms, lease_ms"
            extra = {"sent_at": sent_at.isoformat()} if sent_at else {}
            values = _values(status=status, **extra)
        self.ddb.update_item(
            TableName=self.table,
            Key=to_item(survey_key(survey_id)),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def get_survey(self, survey_id: str) -> Survey | None:
        item = self.ddb.get_item(
            TableName=self.table, Key=to_item(survey_key(survey_id)), ConsistentRead=True
        ).get("Item")
        return Survey.model_validate(from_item(item)) if item else None

    def answer(
        self, survey: Survey, answer: SurveyAnswer, at: datetime, follow_up: FollowUp | None
    ) -> Survey:
        request = answer_transaction(
            self.table, self.tickets_table, survey=survey, answer=answer, at=at, follow_up=follow_up
        )
        try:
            self.ddb.transact_write_items(**request)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise AlreadyAnswered(survey.survey_id) from exc
            raise
        answered = self.get_survey(survey.survey_id)
        assert answered is not None
        return answered

    def csat(self) -> Csat:
        item = self.ddb.get_item(
            TableName=self.table, Key=to_item(CSAT_KEY), ConsistentRead=True
        ).get("Item")
        data = from_item(item) if item else {}
        ratings = {str(r): int(data.get(f"r{r}", 0)) for r in range(1, 6)}
        return Csat(
            answered=int(data.get("answered", 0)),
            satisfied=int(data.get("satisfied", 0)),
            ratings=ratings,
        )

    # ------------------------------------------------------------------ listings

    def list_attempts(
        self, *, ticket_id: str | None = None, customer_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Attempts, oldest first: of one ticket (Query pk), one customer (by_customer), or all."""
        if ticket_id is not None:
            items = self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :att)",
                ExpressionAttributeValues=_values(pk=f"TICKET#{ticket_id}", att="ATT#"),
            )
        elif customer_id is not None:
            items = self._query(
                IndexName="by_customer",
                KeyConditionExpression="customer_id = :cid",
                ExpressionAttributeValues=_values(cid=customer_id),
            )
        else:
            items = self._scan("begins_with(sk, :prefix)", "ATT#")
        return sorted(items, key=lambda i: str(i.get("attempt_key", "")))

    def list_followups(self) -> list[dict[str, Any]]:
        """Follow-up tasks, newest first."""
        return list(
            self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=_values(pk="FOLLOWUPS"),
                ScanIndexForward=False,
            )
        )

    def list_surveys(self) -> list[dict[str, Any]]:
        return list(self._scan("begins_with(pk, :prefix)", "SURVEY#"))

    def list_notifications(self) -> list[dict[str, Any]]:
        return list(self._scan("begins_with(sk, :prefix)", "EVENT#"))

    def _query(self, **request: Any) -> Iterator[dict[str, Any]]:
        paginator = self.ddb.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, **request):
            yield from (from_item(i) for i in page.get("Items", []))

    def _scan(self, condition: str, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.ddb.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table,
            FilterExpression=condition,
            ExpressionAttributeValues=_values(prefix=prefix),
        )
        for page in pages:
            yield from (from_item(i) for i in page.get("Items", []))
