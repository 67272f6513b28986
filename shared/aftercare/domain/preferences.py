"""How a customer wants to hear from us: channels in order, language, quiet hours in their zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

SUPPORTED_LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


# Where each channel finds its address in the customer's `contact` map.
CONTACT_KEYS: dict[Channel, str] = {
    Channel.EMAIL: "email",
    Channel.SMS: "phone",
    Channel.PUSH: "push",
}


def _known_channels(value: Any) -> list[str]:
    """Unknown channel names are dropped (a newer client may know more), order is kept."""
    known = {c.value for c in Channel}
    seen: list[str] = []
    for name in value or []:
        if name in known and name not in seen:
            seen.append(name)
    return seen


class QuietHours(BaseModel):
    """A daily window (local time, ``HH:MM`` or ``HH:MM:SS``) in which non-critical messages wait.

    ``start > end`` wraps past midnight (22:00-07:00); ``start == end`` means no quiet hours."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    start: time
    end: time

    def ends_at(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When the quiet window containing `now` ends (aware), or None if `now` is not quiet."""
        local = now.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        if self.start < self.end:
            quiet = self.start <= clock < self.end
            end_day = local.date()
        else:
            quiet = clock >= self.start or clock < self.end
            end_day = local.date() + timedelta(days=1 if clock >= self.start else 0)
        if not quiet:
            return None
        return datetime.combine(end_day, self.end, tzinfo=zone)


class NotificationProfile(BaseModel):
    """The notification-relevant part of a customer record (CustomersTable item)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    customer_id: str
    name: str = ""
    language: str = DEFAULT_LANGUAGE
    time_zone: str = "UTC"
    channels: Annotated[list[Channel], BeforeValidator(_known_channels)] = Field(
        default_factory=list
    )
    contact: dict[str, str] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        zone_of(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.time_zone)

    def address(self, channel: Channel) -> str | None:
        return self.contact.get(CONTACT_KEYS[channel]) or None

    def quiet_until(self, now: datetime) -> datetime | None:
        """End of the quiet window `now` falls in (customer's zone), or None."""
        return self.quiet_hours.ends_at(now, self.zone) if self.quiet_hours else None


@cache
def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
