"""Survey answers and the CSAT counters (the survey API)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aftercare.domain.notifications import Survey
    from aftercare.domain.surveys import Csat, FollowUp, SurveyAnswer


class SurveyStore(Protocol):
    def get_survey(self, survey_id: str) -> Survey | None: ...

    def answer(
        self, survey: Survey, answer: SurveyAnswer, at: datetime, follow_up: FollowUp | None
    ) -> Survey:
        """Store the answer once (conditional on no earlier answer), count it toward CSAT and
        open the follow-up, in one transaction. Raises AlreadyAnswered."""
        ...

    def csat(self) -> Csat: ...

    def follow_ups(self, limit: int) -> list[FollowUp]:
        """The newest `limit` follow-ups (ratings of 1-2), newest first."""
        ...
