"""The channel policy (`data/channels.yaml`): which channels customers and agents may raise a
ticket through, and each customer tier's extra treatment (a callback task for VIP phone/chat
tickets). Code reads the policy; nothing branches on a tier's name."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from pydantic import BaseModel, ConfigDict, PositiveInt

from aftercare.data import DATA_FOLDER, load
from aftercare.models.tickets import Channel


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class TierTreatment(_Rule):
    callback_channels: tuple[Channel, ...] = ()
    callback_within_minutes: PositiveInt = 60
    named_engineer_preference: bool = False

    @property
    def callback_within(self) -> timedelta:
        return timedelta(minutes=self.callback_within_minutes)

    def wants_callback(self, channel: Channel) -> bool:
        return channel in self.callback_channels


class ChannelPolicy(_Rule):
    version: str
    customer_channels: tuple[Channel, ...]
    agent_channels: tuple[Channel, ...]
    tiers: dict[str, TierTreatment]

    def allows(self, channel: Channel, *, agent: bool) -> bool:
        return channel in (self.agent_channels if agent else self.customer_channels)

    def treatment(self, tier: str) -> TierTreatment:
        return self.tiers.get(tier) or TierTreatment()


@cache
def load_channel_policy() -> ChannelPolicy:
    """The channel policy shipped with this build (shared layer data)."""
    data = load(DATA_FOLDER, "channels.yaml")
    data["version"] = str(data["version"])
    return ChannelPolicy.model_validate(data)
