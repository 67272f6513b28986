"""Builds the notifier from its settings; shared by the stream and the scheduled function."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from aftercare.settings import EnvSettings

if TYPE_CHECKING:
    from aftercare.domain.notifier import Notifier


class NotifierSettings(EnvSettings):
    """Environment of a function that sends notifications (all required: no silent defaults)."""

    notifications_table: str
    tickets_table: str
    customers_table: str
    sender_address: str
    push_topic_arn: str
    digest_window_seconds: int
    survey_delay_seconds: int
    survey_link_base: str
    incidents_table: str


def build_notifier(settings: NotifierSettings) -> Notifier:
    # Imported when a notifier is built, not with the settings: a function whose settings
    # include the notifier's but which notifies only now and then (telemetry's maintenance
    # advice) starts without the notification stack (composition, templates, prices, senders).
    from aftercare.adapters.incidents import DynamoIncidentStore
    from aftercare.adapters.messaging import channel_senders
    from aftercare.adapters.notifications_store import DynamoNotificationStore
    from aftercare.domain.composition import Composer
    from aftercare.domain.incidents import load_incident_policy
    from aftercare.domain.notifier import Notifier, NotifierPolicy
    from aftercare.domain.pricing import load_price_table
    from aftercare.domain.templates import load_book

    return Notifier(
        store=DynamoNotificationStore(
            table=settings.notifications_table,
            tickets_table=settings.tickets_table,
            customers_table=settings.customers_table,
        ),
        senders=channel_senders(
            sender_address=settings.sender_address, push_topic_arn=settings.push_topic_arn
        ),
        composer=Composer(
            book=load_book(), prices=load_price_table(), survey_link_base=settings.survey_link_base
        ),
        policy=NotifierPolicy(
            digest_window=timedelta(seconds=settings.digest_window_seconds),
            survey_delay=timedelta(seconds=settings.survey_delay_seconds),
        ),
        incidents=DynamoIncidentStore(
            incidents_table=settings.incidents_table,
            tickets_table=settings.tickets_table,
            policy=load_incident_policy(),
        ),
    )
