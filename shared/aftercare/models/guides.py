"""Troubleshooting guides as the API shows them: one guide in one language."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from aftercare.models.ids import ThingName


class GuideLanguage(StrEnum):
    """The languages guides are written in (`zh` is accepted as `zh-CN`)."""

    EN = "en"
    ZH_CN = "zh-CN"

    @classmethod
    def parse(cls, value: str) -> GuideLanguage:
        return cls.ZH_CN if value.lower().startswith("zh") else cls(value)


class GuideStepView(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    n: int = Field(description="1-based position")
    text: str
    routine: str | None = Field(
        default=None, description="a safe device routine the app may offer to run at this step"
    )


class GuideView(BaseModel):
    """A guide for one fault code (and model) in one language."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    guide_id: str
    code: str
    model: str | None = Field(default=None, description="set when the guide is model-specific")
    version: str = Field(description="the guides file's version")
    lang: GuideLanguage
    title: str
    steps: list[GuideStepView]
    self_service: bool = Field(
        description="the customer may follow it and ask the device to confirm the fix"
    )
    verify_routine: str
    link: str = Field(description="where the app fetches this guide")


class SelfServiceStarted(BaseModel):
    """A customer's "I followed the guide", recorded: the device is asked to confirm."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    attempt: int = Field(description="the ticket's self-service attempts so far, this one included")
    request_id: str = Field(description="the verification (GET /diagnostics/{request_id})")
    routine: str
    status: str = Field(
        description=(
            "`waiting_for_device`: the device answers now, or when it reconnects, until "
            "`expires_at`; then the ticket resolves `self_service` or goes towards dispatch"
        )
    )
    expires_at: AwareDatetime
    device_last_seen: AwareDatetime | None = Field(
        default=None,
        description=(
            "when the device last answered a diagnostic (or reported a fault): long ago means "
            "it is probably offline and verification waits for it to reconnect"
        ),
    )


class AskAssistant(BaseModel):
    """A customer's question to the answer service."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    question: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    thing: ThingName | None = Field(
        default=None, description="the device asked about: its model's guides come first"
    )
    lang: GuideLanguage = GuideLanguage.EN


class GuideStepStarted(BaseModel):
    """A guide step's device routine, sent to the device for the customer."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    step: int = Field(description="the guide step (1-based) whose routine runs")
    routine: str
    request_id: str = Field(description="the request (GET /tickets/{id}/diagnostics)")
    expires_at: AwareDatetime
