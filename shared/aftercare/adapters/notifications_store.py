"""NotificationStore on DynamoDB: the role adapters (`notification_ledger`,
`notification_queues`) composed into the one store the Notifier is given."""

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
