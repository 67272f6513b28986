"""The satisfaction loop: a survey after resolution, one answer by the owner, follow-up on 1-2.

CSAT = share of answers rated 4 or 5. A rating of 1 or 2 opens a follow-up task for managers
in the same transaction as the answer, so a bad answer can never go unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from aftercare.domain.access import Caller
from aftercare.domain.notifications import Survey
from aftercare.domain.ports.surveys import SurveyStore

SATISFIED_MIN = 4
FOLLOW_UP_MAX = 2


def survey_id_for(ticket_id: str) -> str:
    """Deterministic per ticket, so a redelivered resolution schedules one survey."""
    digest = hashlib.sha256(f"survey|{ticket_id}".encode()).digest()
    return "S-" + base64.b32encode(digest).decode()[:12]


class SurveyAnswer(BaseModel):
    """The body of `POST /surveys/{survey_id}/answer`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )

    rating: Annotated[int, Field(ge=1, le=5, strict=True)]
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None


class FollowUp(BaseModel):
    """A task for managers: a customer rated the service 1 or 2."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    survey_id: str
    ticket_id: str
    customer_id: str
    rating: int
    comment: str | None = None
    fault_code: str
    created_at: AwareDatetime
    status: str = "open"


class Csat(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    answered: int = 0
    satisfied: int = 0
    ratings: dict[str, int] = Field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """Share of 4-5 answers (0..1), None before the first answer."""
        return self.satisfied / self.answered if self.answered else None


class SurveyNotFound(LookupError):
    def __init__(self, survey_id: str) -> None:
        super().__init__(f"survey {survey_id} not found")
        self.survey_id = survey_id


class NotYourSurvey(PermissionError):
    def __init__(self, survey_id: str) -> None:
        super().__init__(f"survey {survey_id} belongs to another customer")
        self.survey_id = survey_id


class AlreadyAnswered(Exception):
    def __init__(self, survey_id: str) -> None:
        super().__init__(f"survey {survey_id} was already answered")


class SurveyNotOpen(Exception):
    def __init__(self, survey_id: str) -> None:
        super().__init__(f"survey {survey_id} has not been sent yet")


def readable_survey(store: SurveyStore, survey_id: str, customer_id: str | None) -> Survey:
    """The survey if `customer_id` owns it (None: a manager, who may read any)."""
    survey = store.get_survey(survey_id)
    if survey is None:
        raise SurveyNotFound(survey_id)
    if customer_id is not None and survey.customer_id != customer_id:
        raise NotYourSurvey(survey_id)
    return survey


def answer_survey(
    store: SurveyStore, survey_id: str, customer_id: str, answer: SurveyAnswer, now: datetime
) -> Survey:
    """Record the owner's one answer; a rating of 1-2 opens a follow-up for managers."""
    survey = readable_survey(store, survey_id, customer_id)
    if survey.rating is not None:
        raise AlreadyAnswered(survey_id)
    if survey.status not in ("sent", "answered"):
        raise SurveyNotOpen(survey_id)
    follow_up = None
    if answer.rating <= FOLLOW_UP_MAX:
        follow_up = FollowUp(
            survey_id=survey_id,
            ticket_id=survey.ticket_id,
            customer_id=customer_id,
            rating=answer.rating,
            comment=answer.comment,
            fault_code=survey.facts.fault_code,
            created_at=now,
        )
    return store.answer(survey, answer, now, follow_up)


MAX_FOLLOW_UPS = 200


def follow_ups_for(store: SurveyStore, caller: Caller, *, limit: int) -> list[FollowUp]:
    """The managers' follow-ups from low survey ratings (1-2), newest first."""
    caller.require_manager("see survey follow-ups")
    return store.follow_ups(limit)
