"""`aftercare notifications|surveys|followups …`: what customers were told, surveys, follow-ups."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

import typer
from aftercare.adapters.notification_reports import NotificationReports

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import api_client_for
from infra.notification_summary import csat_view
from infra.stores import notification_store_of

ATTEMPT_FIELDS = [
    "ticket_id",
    "customer_id",
    "kind",
    "channel",
    "language",
    "status",
    "sent_at",
    "reason",
    "message_id",
    "digest_size",
]
SURVEY_FIELDS = [
    "survey_id",
    "ticket_id",
    "customer_id",
    "status",
    "due_at",
    "sent_at",
    "rating",
    "comment",
    "answered_at",
]
FOLLOWUP_FIELDS = [
    "survey_id",
    "ticket_id",
    "customer_id",
    "rating",
    "comment",
    "fault_code",
    "created_at",
    "status",
]


def _store(opts: StackOptions) -> NotificationReports:
    return notification_store_of(opts.target())


def attempt_row(item: dict[str, Any]) -> dict[str, Any]:
    """One attempt as `notifications list` prints it (`sent_at` is when it was attempted)."""
    row = {k: item.get(k) for k in ATTEMPT_FIELDS}
    row["sent_at"] = item.get("at")
    return row


notifications_app = typer.Typer(help="what customers were told, per attempt")
surveys_app = typer.Typer(help="satisfaction surveys")
followups_app = typer.Typer(help="follow-up tasks for managers")


@notifications_app.command("list")
@stack_command
def notifications_list(
    ticket: str | None = None,
    customer: str | None = None,
    kind: str | None = None,
    status: Literal["sent", "failed", "deferred", "suppressed"] | None = None,
    channel: Literal["email", "sms", "push"] | None = None,
    *,
    opts: StackOptions,
) -> None:
    """Every delivery attempt (sent, failed with reason, deferred, suppressed), oldest first."""
    items = _store(opts).list_attempts(ticket_id=ticket, customer_id=customer)
    rows = [
        r
        for r in (attempt_row(i) for i in items)
        if (kind is None or r["kind"] == kind)
        and (status is None or r["status"] == status)
        and (channel is None or r["channel"] == channel)
    ]
    emit(rows, opts.json, ATTEMPT_FIELDS[:7])


@surveys_app.command("list")
@stack_command
def surveys_list(*, opts: StackOptions) -> None:
    """Surveys with their status and answer."""
    items = sorted(_store(opts).list_surveys(), key=lambda i: str(i.get("due_at")))
    emit([{k: i.get(k) for k in SURVEY_FIELDS} for i in items], opts.json, SURVEY_FIELDS[:7])


@surveys_app.command("csat")
@stack_command
def surveys_csat(*, opts: StackOptions) -> None:
    """CSAT: the share of survey answers rated 4 or 5."""
    emit(csat_view(_store(opts)), True)


@surveys_app.command("answer")
@stack_command
def surveys_answer(
    survey_id: Annotated[str, typer.Argument(show_default=False)],
    rating: Annotated[int, typer.Option(min=1, max=5, show_default=False)],
    comment: str | None = None,
    *,
    opts: StackOptions,
) -> None:
    """Answer a survey through the API as the logged-in customer (`aftercare login`)."""
    api = api_client_for(opts)
    if api is None:
        raise CliError("log in as the survey's customer first: `aftercare login --user NAME`")
    body: dict[str, Any] = {"rating": rating}
    if comment:
        body["comment"] = comment
    emit(api.post(f"/surveys/{quote(survey_id, safe='')}/answer", body), True)


@followups_app.command("list")
@stack_command
def followups_list(
    status: Literal["open", "done"] | None = None,
    *,
    opts: StackOptions,
) -> None:
    """Follow-up tasks for managers (survey ratings of 1-2), newest first."""
    items = _store(opts).list_followups()
    if status:
        items = [i for i in items if i.get("status") == status]
    emit([{k: i.get(k) for k in FOLLOWUP_FIELDS} for i in items], opts.json, FOLLOWUP_FIELDS)
