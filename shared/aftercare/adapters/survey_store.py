"""SurveyStore on DynamoDB: a survey's one answer, the CSAT counters and the follow-ups.

SURVEY#<id> / SURVEY          a survey: due time, status, the one answer
FOLLOWUPS   / <at>#<survey>   a follow-up task for managers (rating 1-2)
STATS       / CSAT            answer counters (answered, satisfied, r1..r5)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_item
from aftercare.adapters.notification_items import (
    CSAT_KEY,
    survey_key,
    values_of,
)
from aftercare.adapters.ticket_items import timeline_item
from aftercare.adapters.transactions import Failure, TxItem, cancelled, request_of
from aftercare.domain.notifications import (
    Survey,
)
from aftercare.domain.surveys import AlreadyAnswered, Csat, FollowUp, SurveyAnswer
from aftercare.models.tickets import TimelineEntry


def answer_items(
    table: str,
    tickets_table: str,
    *,
    survey: Survey,
    answer: SurveyAnswer,
    at: datetime,
    follow_up: FollowUp | None,
) -> list[TxItem]:
    """Answer once (a second answer fails as a DUPLICATE), count it, open the follow-up, note
    the ticket."""
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
    once = {
        "Update": {
            "TableName": table,
            "Key": to_item(survey_key(survey.survey_id)),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "customer_id = :cid AND attribute_not_exists(rating)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values_of(**values),
        }
    }
    items = [
        TxItem(once, Failure.DUPLICATE),
        TxItem(
            {
                "Update": {
                    "TableName": table,
                    "Key": to_item(CSAT_KEY),
                    "UpdateExpression": f"ADD answered :one, satisfied :sat, r{answer.rating} :one",
                    "ExpressionAttributeValues": values_of(one=1, sat=satisfied),
                }
            }
        ),
    ]
    detail: dict[str, Any] = {"survey_id": survey.survey_id, "rating": answer.rating}
    if follow_up is not None:
        items.append(
            TxItem({"Put": {"TableName": table, "Item": to_item(followup_item(follow_up))}})
        )
        detail["follow_up"] = True
    entry = TimelineEntry(at=at, kind="survey_answered", actor=survey.customer_id, detail=detail)
    note = {
        "Put": {"TableName": tickets_table, "Item": to_item(timeline_item(survey.ticket_id, entry))}
    }
    return [*items, TxItem(note)]


def followup_item(follow_up: FollowUp) -> dict[str, Any]:
    return {
        "pk": "FOLLOWUPS",
        "sk": f"{follow_up.created_at.isoformat()}#{follow_up.survey_id}",
        **follow_up.model_dump(mode="json"),
    }


class DynamoSurveyStore:
    """Answers (once, in one transaction with the counters and the follow-up) and CSAT."""

    def __init__(self, *, table: str, tickets_table: str, ddb: Any | None = None) -> None:
        self.table = table
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def get_survey(self, survey_id: str) -> Survey | None:
        item = self.ddb.get_item(
            TableName=self.table, Key=to_item(survey_key(survey_id)), ConsistentRead=True
        ).get("Item")
        return Survey.model_validate(from_item(item)) if item else None

    def answer(
        self, survey: Survey, answer: SurveyAnswer, at: datetime, follow_up: FollowUp | None
    ) -> Survey:
        items = answer_items(
            self.table, self.tickets_table, survey=survey, answer=answer, at=at, follow_up=follow_up
        )
        try:
            self.ddb.transact_write_items(**request_of(items))
        except ClientError as exc:
            outcome = cancelled(items, exc)
            if outcome is not None and outcome.failure is Failure.DUPLICATE:
                raise AlreadyAnswered(survey.survey_id) from exc
            raise
        answered = self.get_survey(survey.survey_id)
        assert answered is not None
        return answered

    def csat(self) -> Csat:
        return read_csat(self.ddb, self.table)

    def follow_ups(self, limit: int) -> list[FollowUp]:
        """N7: Query pk=FOLLOWUPS newest first, `limit` items."""
        response = self.ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "FOLLOWUPS"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        fields = FollowUp.model_fields
        return [
            FollowUp.model_validate({k: v for k, v in from_item(i).items() if k in fields})
            for i in response.get("Items", [])
        ]


def read_csat(ddb: Any, table: str) -> Csat:
    """The CSAT counters (one item, read consistently)."""
    item = ddb.get_item(TableName=table, Key=to_item(CSAT_KEY), ConsistentRead=True).get("Item")
    data = from_item(item) if item else {}
    ratings = {str(r): int(data.get(f"r{r}", 0)) for r in range(1, 6)}
    return Csat(
        answered=int(data.get("answered", 0)),
        satisfied=int(data.get("satisfied", 0)),
        ratings=ratings,
    )
