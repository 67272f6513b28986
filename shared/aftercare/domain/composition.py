"""What a notification says: template values, the parts and cost sentences, the digest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from aftercare.domain.guides import load_guides
from aftercare.domain.notifications import (
    ACTIVE_FOR_DIAGNOSTICS,
    DIGEST_KIND,
    OPENING_KINDS,
    EventKind,
    Notification,
    Survey,
)
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.pricing import CostEstimate, PriceTable, RepairFacts, estimate
from aftercare.domain.templates import RenderedMessage, TemplateBook, fill, html_list, render
from aftercare.models.guides import GuideLanguage
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import TicketSummary


def ticket_values(
    kind: str,
    facts: TicketSummary,
    *,
    profile: NotificationProfile,
    book: TemplateBook,
    cost: CostEstimate,
    language: str,
) -> dict[str, Any]:
    """Template values for a ticket message (every kind draws from the same set)."""
    return {
        "customer_name": profile.name or profile.customer_id,
        "ticket_id": facts.ticket_id,
        "fault_title": facts.title(language),
        "fault_code": facts.fault_code,
        "model": facts.model,
        "thing": facts.thing,
        "actions": actions_text(facts, book, language, kind),
        "cost": cost_text(cost, book, language),
        "visit_window": visit_window(facts),
        **guide_offer(facts, book, language, kind),
    }


def guide_offer(
    facts: TicketSummary, book: TemplateBook, language: str, kind: str
) -> dict[str, str]:
    """On opening (or classification), a self-serviceable code's guide (the model's own, else
    the generic one): its title and numbered steps (`guide`), and its title and link alone
    (`guide_short`, for SMS and push). Empty for every other message and code."""
    none = {"guide": "", "guide_short": ""}
    if kind not in OPENING_KINDS or facts.status not in ACTIVE_FOR_DIAGNOSTICS:
        return none  # other messages never load the guide book
    guides = load_guides()
    guide = guides.self_serviceable(facts.fault_code, facts.model)
    if guide is None:
        return none
    view = guide.view(GuideLanguage.parse(language), guides.version)
    values = {
        "title": view.title,
        "steps": "\n".join(f"{s.n}. {s.text}" for s in view.steps),
        "link": view.link,
    }
    return {
        "guide": fill(book.fragment("guide_offer", language), values, "text"),
        "guide_short": fill(book.fragment("guide_offer_short", language), values, "text"),
    }


def visit_window(facts: TicketSummary) -> str:
    """The visit's window on the customer's (the booking's) wall clock, e.g. 09:00-11:00."""
    visit = facts.visit
    if visit is None or visit.start is None or visit.end is None:
        return ""
    tz = ZoneInfo(visit.time_zone) if visit.time_zone else UTC
    begin, finish = visit.start.astimezone(tz), visit.end.astimezone(tz)
    return f"{begin:%Y-%m-%d %H:%M}-{finish:%H:%M} ({tz})"


def actions_text(
    facts: TicketSummary, book: TemplateBook, language: str, kind: str = EventKind.TICKET_OPENED
) -> str:
    """What we are already doing: parts held or on order, diagnostics running (on opening)."""
    sentences = []
    for status, fragment in (
        (LineStatus.HELD, "parts_held"),
        (LineStatus.BACKORDERED, "parts_backordered"),
    ):
        lines = [p for p in facts.parts if p.status is status]
        if lines:
            items = ", ".join(
                fill(
                    book.fragment("part_item", language),
                    {"qty": p.qty, "name": p.name(language)},
                    "text",
                )
                for p in lines
            )
            sentences.append(fill(book.fragment(fragment, language), {"parts": items}, "text"))
    opening = kind in OPENING_KINDS
    if opening and facts.auto_diagnose and facts.status in ACTIVE_FOR_DIAGNOSTICS:
        sentences.append(book.fragment("diagnostics_running", language))
    if not sentences:
        sentences.append(book.fragment("engineer_reviewing", language))
    return " ".join(sentences)


def cost_text(cost: CostEstimate, book: TemplateBook, language: str) -> str:
    if cost.in_warranty:
        return book.fragment("cost_warranty", language)
    values = {
        "total": f"{cost.customer_pays:.2f}",
        "currency": cost.currency,
        "parts_cost": f"{cost.parts:.2f}",
        "labour_cost": f"{cost.labour:.2f}",
        "pricing_version": cost.pricing_version,
    }
    return fill(book.fragment("cost_estimate", language), values, "text")


def cost_of(facts: TicketSummary, prices: PriceTable) -> CostEstimate:
    return estimate(RepairFacts.model_validate(facts.model_dump(mode="json")), prices)


@dataclass(frozen=True)
class Composer:
    """Renders messages for a profile from templates, fragments and the price table."""

    book: TemplateBook
    prices: PriceTable
    survey_link_base: str

    def single(
        self, kind: str, facts: TicketSummary, profile: NotificationProfile, **extra: Any
    ) -> RenderedMessage:
        language = profile.language
        cost = cost_of(facts, self.prices)
        values = ticket_values(
            kind, facts, profile=profile, book=self.book, cost=cost, language=language
        )
        return render(self.book, kind, language, {**values, **extra})

    def survey(self, survey: Survey, profile: NotificationProfile) -> RenderedMessage:
        link = f"{self.survey_link_base.rstrip('/')}/{survey.survey_id}"
        return self.single(
            EventKind.SURVEY, survey.facts, profile, survey_link=link, survey_code=survey.survey_id
        )

    def digest(
        self, members: Sequence[Notification], profile: NotificationProfile
    ) -> RenderedMessage:
        if len(members) == 1:
            return self.single(members[0].kind, members[0].facts, profile)
        language = profile.language
        lines = [self._line(n, language) for n in members]
        values = {
            "customer_name": profile.name or profile.customer_id,
            "count": len(members),
            "lines": "\n".join(f"- {line}" for line in lines),
            "lines_html": html_list(lines),
        }
        return render(self.book, DIGEST_KIND, language, values)

    def _line(self, n: Notification, language: str) -> str:
        values = {
            "ticket_id": n.ticket_id,
            "fault_title": n.facts.title(language),
            "visit_window": visit_window(n.facts),
        }
        return fill(self.book.fragment(f"line_{n.kind.value}", language), values, "text")


def body_for(channel: Channel | None, message: RenderedMessage) -> str:
    return message.text if channel in (Channel.EMAIL, None) else message.short
