"""`aftercare admin users create`: a Cognito user of the stack's pool, in one group.

Customers carry `custom:customer_id` (the API scopes them to that customer's tickets and the
customer must exist in CustomersTable); staff (engineers, managers) must not carry one.
Field engineers carry `custom:engineer_id` (their id in the engineer directory: `GET /me/jobs`
is that engineer's calendar); nobody else may.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from aftercare.models.field import ENGINEER_ID_PATTERN
from botocore.exceptions import ClientError

from infra.stores import registry_of
from infra.target import Target

GROUPS = ("engineers", "managers", "customers")
TEMPORARY_PASSWORD_LENGTH = 16
ENGINEER_ID = re.compile(ENGINEER_ID_PATTERN)


class UserError(ValueError):
    """The user cannot be created as asked (the message says why)."""


@dataclass(frozen=True)
class NewUser:
    username: str
    group: str
    customer_id: str | None = None
    engineer_id: str | None = None
    email: str | None = None
    password: str | None = None  # permanent
    temporary_password: bool = False  # generate one and print it


def check_request(user: NewUser) -> None:
    """The rules that need no AWS call."""
    if user.group not in GROUPS:
        raise UserError(f"group must be one of {', '.join(GROUPS)}, not {user.group!r}")
    if user.group == "customers" and not user.customer_id:
        raise UserError("a customer user needs --customer-id")
    if user.group != "customers" and user.customer_id:
        raise UserError(f"staff ({user.group}) must not carry a customer id")
    if user.engineer_id and user.group != "engineers":
        raise UserError(f"only engineers carry an engineer id, not {user.group}")
    if user.engineer_id and not ENGINEER_ID.match(user.engineer_id):
        raise UserError(f"an engineer id looks like E-..., not {user.engineer_id!r}")
    if user.password and user.temporary_password:
        raise UserError("choose --password or --temporary-password, not both")
    if not (user.password or user.temporary_password or user.email):
        raise UserError(
            "without --password or --temporary-password Cognito e-mails an invitation: pass --email"
        )


def user_attributes(user: NewUser) -> list[dict[str, str]]:
    attributes = []
    if user.email:
        attributes += [
            {"Name": "email", "Value": user.email},
            {"Name": "email_verified", "Value": "true"},
        ]
    if user.customer_id:
        attributes.append({"Name": "custom:customer_id", "Value": user.customer_id})
    if user.engineer_id:
        attributes.append({"Name": "custom:engineer_id", "Value": user.engineer_id})
    return attributes


def generate_password() -> str:
    """A password meeting Cognito's default policy (upper, lower, digit, symbol, length)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(TEMPORARY_PASSWORD_LENGTH - 4))
    return (
        core
        + secrets.choice(string.ascii_uppercase)
        + secrets.choice(string.ascii_lowercase)
        + secrets.choice(string.digits)
        + "!"
    )


def create_user(target: Target, user: NewUser) -> dict[str, Any]:
    """Create the user in the stack's pool and group; returns what `admin users create` prints."""
    check_request(user)
    if user.customer_id and not registry_of(target).has_customer(user.customer_id):
        raise UserError(
            f"no customer {user.customer_id} in {target.resource('CustomersTable')}"
            " (seed or create the customer first)"
        )
    pool_id = target.resource("ServiceUserPool")
    cognito = target.client("cognito-idp")
    temporary = generate_password() if user.temporary_password else None
    request: dict[str, Any] = {
        "UserPoolId": pool_id,
        "Username": user.username,
        "UserAttributes": user_attributes(user),
    }
    if temporary or user.password:
        request |= {
            "MessageAction": "SUPPRESS",
            "TemporaryPassword": temporary or generate_password(),
        }
    else:
        request["DesiredDeliveryMediums"] = ["EMAIL"]
    try:
        cognito.admin_create_user(**request)
        if user.password:
            cognito.admin_set_user_password(
                UserPoolId=pool_id, Username=user.username, Password=user.password, Permanent=True
            )
        cognito.admin_add_user_to_group(
            UserPoolId=pool_id, Username=user.username, GroupName=user.group
        )
    except ClientError as exc:
        error = exc.response["Error"]
        raise UserError(f"{error.get('Code')}: {error.get('Message')}") from exc
    shown: dict[str, Any] = {
        "username": user.username,
        "group": user.group,
        "customer_id": user.customer_id,
        "engineer_id": user.engineer_id,
        "email": user.email,
        "user_pool_id": pool_id,
        "status": "CONFIRMED" if user.password else "FORCE_CHANGE_PASSWORD",
    }
    if temporary:
        shown["temporary_password"] = temporary
    return shown
