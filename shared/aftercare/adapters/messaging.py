"""Channel adapters: email through SES, SMS through SNS, app push through an SNS topic.

Each implements `aftercare.domain.notifications.ChannelSender` and turns a provider refusal into
`DeliveryFailed(reason, permanent=...)`: throttling, timeouts and service errors are transient
(worth retrying later); everything else (an unverified sender, an address the provider rejects,
a phone number that is not E.164) is permanent for that address, and the next channel is tried.
"""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from aftercare.adapters.aws import LazyClient
from aftercare.domain.notifications import DeliveryFailed
from aftercare.domain.ports import ChannelSender
from aftercare.domain.preferences import Channel
from aftercare.domain.templates import RenderedMessage

TRANSIENT_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMSThrottlingException",
    }
)


def delivery_failure(exc: ClientError | BotoCoreError, provider: str) -> DeliveryFailed:
    """The domain's view of a provider error: reason text and whether retrying may help."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        reason = f"{provider} {code}: {error.get('Message', '')}".strip()
        return DeliveryFailed(reason, permanent=code not in TRANSIENT_CODES)
    return DeliveryFailed(f"{provider} unreachable: {exc}", permanent=False)


class SesEmailSender:
    """Email through SES from a verified identity: subject, plain text and HTML bodies."""

    def __init__(self, sender: str, *, ses: Any | None = None) -> None:
        self.sender = sender
        self._ses = ses

    ses = LazyClient("ses")

    def send(self, address: str, message: RenderedMessage, *, reference: str) -> str:
        try:
            response = self.ses.send_email(**email_request(self.sender, address, message))
        except (ClientError, BotoCoreError) as exc:
            raise delivery_failure(exc, "SES") from exc
        return str(response["MessageId"])


def email_request(sender: str, address: str, message: RenderedMessage) -> dict[str, Any]:
    def utf8(text: str) -> dict[str, str]:
        return {"Data": text, "Charset": "UTF-8"}

    return {
        "Source": sender,
        "Destination": {"ToAddresses": [address]},
        "Message": {
            "Subject": utf8(message.subject),
            "Body": {"Text": utf8(message.text), "Html": utf8(message.html)},
        },
    }


class SnsSmsSender:
    """Transactional SMS through SNS, published straight to the customer's number."""

    def __init__(self, *, sns: Any | None = None) -> None:
        self._sns = sns

    sns = LazyClient("sns")

    def send(self, address: str, message: RenderedMessage, *, reference: str) -> str:
        try:
            response = self.sns.publish(**sms_request(address, message))
        except (ClientError, BotoCoreError) as exc:
            raise delivery_failure(exc, "SNS SMS") from exc
        return str(response["MessageId"])


def sms_request(address: str, message: RenderedMessage) -> dict[str, Any]:
    return {
        "PhoneNumber": address,
        "Message": message.short,
        "MessageAttributes": {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
        },
    }


class SnsPushSender:
    """App push: one message on the push topic, addressed by the customer's push token.

    The mobile push service subscribes to the topic (filtering on `push_token` or
    `customer_id`) and hands the message to the platform (APNs, FCM)."""

    def __init__(self, topic_arn: str, *, sns: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._sns = sns

    sns = LazyClient("sns")

    def send(self, address: str, message: RenderedMessage, *, reference: str) -> str:
        try:
            response = self.sns.publish(**push_request(self.topic_arn, address, message, reference))
        except (ClientError, BotoCoreError) as exc:
            raise delivery_failure(exc, "SNS push") from exc
        return str(response["MessageId"])


def push_request(
    topic_arn: str, token: str, message: RenderedMessage, reference: str
) -> dict[str, Any]:
    body = {
        "title": message.subject,
        "body": message.short,
        "kind": message.kind,
        "language": message.language,
        "reference": reference,
    }
    return {
        "TopicArn": topic_arn,
        "Message": json.dumps(body, ensure_ascii=False),
        "MessageAttributes": {
            "push_token": {"DataType": "String", "StringValue": token},
            "kind": {"DataType": "String", "StringValue": message.kind},
        },
    }


def channel_senders(*, sender_address: str, push_topic_arn: str) -> dict[Channel, ChannelSender]:
    """The deployment's channels: SES email, SNS SMS, SNS-topic push."""
    return {
        Channel.EMAIL: SesEmailSender(sender_address),
        Channel.SMS: SnsSmsSender(),
        Channel.PUSH: SnsPushSender(push_topic_arn),
    }
