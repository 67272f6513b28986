"""Who may see and do what through the support API.

Callers are Cognito users; their groups and customer id arrive as JWT claims that API
Gateway's JWT authorizer has already verified. Engineers and managers see every ticket;
a customer sees only tickets on devices they own, and anything else is *not found* (never
*forbidden*, which would confirm that it exists). Only engineers start diagnostics.

Token policy: ID tokens only. The authorizer accepts Cognito access tokens too (by
`client_id`), but those carry no `custom:customer_id`; a customer holding one would look like
nobody in particular. So `caller_from_claims`, the one place that turns claims into a caller,
refuses anything but `token_use == "id"` (401), and a caller that is not staff must be a
customer with a customer id (403 otherwise): nobody becomes staff by missing a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

CUSTOMER_ID_CLAIM = "custom:customer_id"
ENGINEER_ID_CLAIM = "custom:engineer_id"
GROUPS_CLAIM = "cognito:groups"
TOKEN_USE_CLAIM = "token_use"  # noqa: S105 - a claim name, not a secret


class Group(StrEnum):
    ENGINEERS = "engineers"
    MANAGERS = "managers"
    CUSTOMERS = "customers"


class Forbidden(Exception):
    """The caller is known but may not do this."""


class Unauthenticated(Exception):
    """The token is valid but not one this API accepts (an access token, no claims)."""


class Caller(BaseModel):
    """Staff (engineers and/or managers) or one customer; never anything in between."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    subject: str
    username: str
    groups: frozenset[str]
    customer_id: str | None = None
    engineer_id: str | None = None  # an engineer's id in the field directory (custom claim)

    @model_validator(mode="after")
    def _staff_or_customer(self) -> Caller:
        if not self.staff and not (Group.CUSTOMERS in self.groups and self.customer_id):
            raise ValueError("a caller is staff or a customer with a customer id")
        return self

    @property
    def owner_scope(self) -> str | None:
        """None for staff (everything); otherwise the customer id every read is limited to."""
        return None if self.staff else self.customer_id

    @property
    def staff(self) -> bool:
        return bool({Group.ENGINEERS, Group.MANAGERS} & self.groups)

    @property
    def customer(self) -> bool:
        return not self.staff and Group.CUSTOMERS in self.groups

    @property
    def actor(self) -> str:
        return f"user:{self.username}"

    def may_see(self, owner_customer_id: str | None) -> bool:
        """Whether a record owned by `owner_customer_id` is visible to this caller."""
        if self.staff:
            return True
        return (
            self.customer and self.customer_id is not None and owner_customer_id == self.customer_id
        )

    def require_reader(self) -> None:
        if not (self.staff or self.customer):
            raise Forbidden("this API is for engineers, managers and customers")

    def require_engineer(self) -> None:
        if Group.ENGINEERS not in self.groups:
            raise Forbidden("only engineers may start diagnostics")

    def require_field_engineer(self) -> str:
        """The engineer id of a caller acting as a field engineer (their own jobs)."""
        if Group.ENGINEERS not in self.groups or not self.engineer_id:
            raise Forbidden("only an engineer with custom:engineer_id has jobs")
        return self.engineer_id

    @property
    def manager(self) -> bool:
        return Group.MANAGERS in self.groups

    def require_manager(self, action: str) -> None:
        if not self.manager:
            raise Forbidden(f"only managers may {action}")

    def require_customer(self, action: str) -> str:
        """The customer id of a caller acting as a customer; staff are Forbidden to `action`."""
        if not self.customer or self.customer_id is None:
            raise Forbidden(f"only the customer who owns the device may {action}")
        return self.customer_id


def claim_list(value: Any) -> list[str]:
    """A list claim as API Gateway hands it over: a JSON list, or its "[a b c]" rendering."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str):
        return []
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item for item in text.replace(",", " ").split() if item]


def caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    """The caller behind verified JWT claims: the one place that decides staff or which
    customer. Raises Unauthenticated (not an ID token) or Forbidden (neither staff nor a
    customer with a customer id)."""
    if not claims:
        raise Unauthenticated("no verified token claims reached the function")
    if claims.get(TOKEN_USE_CLAIM) != "id":
        raise Unauthenticated(
            f"send a Cognito ID token, not token_use={claims.get(TOKEN_USE_CLAIM)!r}"
        )
    groups = frozenset(claim_list(claims.get(GROUPS_CLAIM)))
    customer_id = claims.get(CUSTOMER_ID_CLAIM)
    engineer_id = claims.get(ENGINEER_ID_CLAIM) if Group.ENGINEERS in groups else None
    if not {Group.ENGINEERS, Group.MANAGERS} & groups:
        if Group.CUSTOMERS not in groups:
            raise Forbidden("this API is for engineers, managers and customers")
        if not customer_id:
            raise Forbidden("a customer token without custom:customer_id")
    return Caller(
        subject=str(claims.get("sub", "")),
        username=str(
            claims.get("cognito:username") or claims.get("username") or claims.get("sub", "")
        ),
        groups=groups,
        customer_id=str(customer_id) if customer_id else None,
        engineer_id=str(engineer_id) if engineer_id else None,
    )
