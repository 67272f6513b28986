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

from aftercare.adapters.notification_ledger import DynamoLedger, DynamoProfiles
from aftercare.adapters.notification_queues import (
    DynamoBundles,
    DynamoDueQueues,
    DynamoSurveySchedule,
)


class DynamoNotificationStore(
    DynamoProfiles, DynamoLedger, DynamoBundles, DynamoDueQueues, DynamoSurveySchedule
):
    """NotificationStore on DynamoDB: every role the Notifier needs, on one table."""
