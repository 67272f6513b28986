"""Local provisioning of messaging identities: `AWS::SES::EmailIdentity` in moto's SES.

moto's SES refuses to send from an unverified identity (as SES does), so the sender the
template declares is verified here: an address with VerifyEmailIdentity, a domain with
VerifyDomainIdentity. DKIM, MAIL FROM, feedback and configuration-set settings have no local
behaviour and are accepted as is; any other property stops start-up.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

from infra.local.cfn_yaml import TemplateError
from infra.local.provision_context import moto_client, moto_endpoint
from infra.local.template import Resolver, Resource

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
    """What this provisioner needs from `infra.local.provision_context.StackContext`."""

    resolver: Resolver
    region: str
    clients: Any


def ses_client(endpoint_url: str | None, region: str) -> Any:
    """An SES client beside the provisioner's other clients (same moto endpoint, if any)."""
    return moto_client("ses", endpoint_url, region)


def provision_email_identity(context: ProvisionContext, resource: Resource) -> dict[str, Any]:
    unknown = sorted(set(resource.properties) - _IDENTITY_APPLIED - _IDENTITY_IGNORED)
    if unknown:
        raise TemplateError(f"property {unknown} is not supported locally")
    identity = context.resolver.resolve_str(
        resource.properties.get("EmailIdentity"), "EmailIdentity"
    )
    ses = ses_client(moto_endpoint(context.clients.sqs), context.region)
    if "@" in identity:
        ses.verify_email_identity(EmailAddress=identity)
    else:
        ses.verify_domain_identity(Domain=identity)
    log.info("verified SES identity %s", identity)
    return {"Ref": identity}
