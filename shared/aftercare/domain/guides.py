"""Troubleshooting guides (`data/guides.yaml`): per fault code, optionally per product model (a
model's own guide overrides the code's generic one), steps in English and Simplified Chinese.

Which codes are self-serviceable is the guides file's word: a code whose guide says
`self_service: true` is offered to the customer when a ticket opens, and the customer may ask
the device to confirm the fix (`aftercare.domain.self_service`)."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.diagnostics_records import VERIFY_ROUTINE
from aftercare.models.diagnostics import Routine
from aftercare.models.guides import GuideLanguage, GuideStepView, GuideView

GUIDES_PATH = "/guides"


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)


Text = Annotated[str, StringConstraints(min_length=1, max_length=600)]


class Localized(_Content):
    en: Text
    zh_cn: Text = Field(alias="zh-CN")

    def text(self, lang: GuideLanguage) -> str:
        return self.zh_cn if lang is GuideLanguage.ZH_CN else self.en


class GuideStep(_Content):
    en: Text
    zh_cn: Text = Field(alias="zh-CN")
    routine: Routine | None = None

    def text(self, lang: GuideLanguage) -> str:
        return self.zh_cn if lang is GuideLanguage.ZH_CN else self.en


class Guide(_Content):
    id: Annotated[str, StringConstraints(pattern=r"^G-[A-Z0-9-]{1,60}$")]
    code: str
    model: str | None = None
    self_service: bool = False
    verify_routine: Routine = Routine(VERIFY_ROUTINE)
    title: Localized
    steps: Annotated[tuple[GuideStep, ...], Field(min_length=1, max_length=12)]

    def view(self, lang: GuideLanguage, version: str) -> GuideView:
        query = {"code": self.code, "lang": lang.value}
        if self.model:
            query["model"] = self.model
        return GuideView(
            guide_id=self.id,
            code=self.code,
            model=self.model,
            version=version,
            lang=lang,
            title=self.title.text(lang),
            steps=[
                GuideStepView(n=n, text=step.text(lang), routine=step.routine)
                for n, step in enumerate(self.steps, start=1)
            ],
            self_service=self.self_service,
            verify_routine=self.verify_routine.value,
            link=f"{GUIDES_PATH}?{urlencode(query)}",
        )


class GuideBook(_Content):
    version: str
    guides: tuple[Guide, ...]

    def find(self, code: str, model: str | None = None) -> Guide | None:
        """The model's own guide for `code`, else the code's generic guide, else None."""
        generic = None
        for guide in self.guides:
            if guide.code != code:
                continue
            if guide.model is not None and guide.model == model:
                return guide
            if guide.model is None:
                generic = guide
        return generic

    def by_id(self, guide_id: str) -> Guide | None:
        return next((g for g in self.guides if g.id == guide_id), None)

    def self_serviceable(self, code: str, model: str | None = None) -> Guide | None:
        """The guide a customer may follow for `code` on `model`, when it is self-service."""
        guide = self.find(code, model)
        return guide if guide is not None and guide.self_service else None


class NoGuide(LookupError):
    """No guide for this code (and model)."""

    def __init__(self, code: str, model: str | None) -> None:
        on = f" on {model}" if model else ""
        super().__init__(f"no troubleshooting guide for {code}{on}")


class UnknownCode(ValueError):
    """A fault code the catalog does not have."""


def parse_guides(data: dict[str, Any]) -> GuideBook:
    book = GuideBook.model_validate({**data, "version": str(data["version"])})
    ids = [g.id for g in book.guides]
    if len(ids) != len(set(ids)):
        raise ValueError("guides.yaml: guide ids must be unique")
    keys = [(g.code, g.model) for g in book.guides]
    if len(keys) != len(set(keys)):
        raise ValueError("guides.yaml: one guide per code and model")
    return book


@cache
def load_guides() -> GuideBook:
    """The guides shipped with this build (shared layer data; the layer reads its JSON twin)."""
    return parse_guides(load(DATA_FOLDER, "guides.yaml"))
