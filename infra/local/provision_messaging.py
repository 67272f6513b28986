"""Local provisioning of messaging identities: `AWS::SES::EmailIdentity` in moto's SES.

moto's SES refuses to send from an unverified identity (as SES does), so the sender the
template declares is verified here: an address with VerifyEmailIdentity, a domain with
VerifyDomainIdentity. DKIM, MAIL FROM, feedback and configuration-set settings have no local
behaviour and are accepted as is; any other property stops start-up.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from infra.local.template import Resolver, Resource, TemplateError

log = logging.getLogger(__name__)

_IDENTITY_APPLIED: Final = frozenset({"EmailIdentity"})
_IDENTITY_IGNORED: Final = frozenset(
    {
        "ConfigurationSetAttributes",
        "DkimAttributes",
        "DkimSigningAttributes",
        "FeedbackAttributes",
        "MailFromAttributes",
    }
)


class ProvisionContext(Protocol):
    """What this provisioner needs from `infra.local.provision._Context`."""

    resolver: Resolver
    region: str
    clients: Any


def ses_client(endpoint_url: str | None, region: str) -> Any:
    """An SES client beside the provisioner's other clients (same moto endpoint, if any)."""
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        region_name=region,
    )
    config = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 2})
    return session.client("ses", endpoint_url=endpoint_url, config=config)


def provision_email_identity(context: ProvisionContext, resource: Resource) -> dict[str, Any]:
    unknown = sorted(set(resource.properties) - _IDENTITY_APPLIED - _IDENTITY_IGNORED)
    if unknown:
        raise TemplateError(f"property {unknown} is not supported locally")
    identity = context.resolver.resolve_str(
        resource.properties.get("EmailIdentity"), "EmailIdentity"
    )
    ses = ses_client(_moto_endpoint(context.clients.sqs), context.region)
    if "@" in identity:
        ses.verify_email_identity(EmailAddress=identity)
    else:
        ses.verify_domain_identity(Domain=identity)
    log.info("verified SES identity %s", identity)
    return {"Ref": identity}


def _moto_endpoint(other: Any) -> str | None:
    """The endpoint the other clients use; None for AWS's own (e.g. under `mock_aws`)."""
    endpoint = str(other.meta.endpoint_url)
    host = urlsplit(endpoint).hostname or ""
    return None if host.endswith(".amazonaws.com") else endpoint
