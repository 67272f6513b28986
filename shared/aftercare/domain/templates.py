"""Message templates as data (per message kind, per language), rendered with escaping.

Templates live in ``shared/aftercare/data/notifications/<kind>.yaml`` and use `string.Template`
placeholders (``$name``): no logic, no attribute access, nothing a template author can execute.
Every substituted value is escaped for the format it lands in: HTML-escaped in ``html`` bodies
(unless it is `Markup` the renderer built itself), folded onto one line without control
characters in ``subject`` and ``short`` (SMS, push), stripped of control characters in ``text``.

A language a template lacks (or a format missing in that language) falls back to English; the
result says so (`RenderedMessage.fallback`) so the caller can log it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from functools import cache
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.preferences import DEFAULT_LANGUAGE

Format = Literal["subject", "text", "html", "short"]
FORMATS: tuple[Format, ...] = ("subject", "text", "html", "short")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")


class Markup(str):
    """HTML the renderer built from escaped parts; inserted into ``html`` as is."""

    __slots__ = ()


class MissingTemplate(LookupError):
    """No English template for a message kind: a packaging bug, never a runtime choice."""


class MessageTemplate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    subject: str
    text: str
    html: str
    short: str


class RenderedMessage(BaseModel):
    """One message, ready for any channel: email uses subject/text/html, SMS and push `short`."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: str
    language: str
    requested_language: str
    subject: str
    text: str
    html: str
    short: str

    @property
    def fallback(self) -> bool:
        return self.language != self.requested_language


class TemplateBook(BaseModel):
    """All message templates and text fragments, by kind (or fragment name) and language."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    version: str
    templates: dict[str, dict[str, dict[str, str]]]
    fragments: dict[str, dict[str, str]]

    def template(self, kind: str, language: str) -> tuple[MessageTemplate, str]:
        """The template for `kind` in `language`, per format falling back to English.

        Returns the template and the language actually used ('en' if anything fell back)."""
        by_language = self.templates.get(kind)
        if not by_language or DEFAULT_LANGUAGE not in by_language:
            raise MissingTemplate(f"no English template for message kind {kind!r}")
        english = by_language[DEFAULT_LANGUAGE]
        wanted = by_language.get(language, {})
        merged = {f: wanted.get(f) or english[f] for f in FORMATS}
        complete = all(wanted.get(f) for f in FORMATS)
        return MessageTemplate(**merged), language if complete else DEFAULT_LANGUAGE

    def fragment(self, name: str, language: str) -> str:
        texts = self.fragments.get(language) or {}
        return texts.get(name) or self.fragments[DEFAULT_LANGUAGE][name]


def escape(value: Any, fmt: Format) -> str:
    """`value` made safe for `fmt` (see module docstring)."""
    if fmt == "html":
        return str(value) if isinstance(value, Markup) else html.escape(str(value), quote=True)
    text = _CONTROL.sub(" ", str(value))
    if fmt in ("subject", "short"):
        return _WHITESPACE.sub(" ", text).strip()
    return text


def fill(text: str, values: Mapping[str, Any], fmt: Format) -> str:
    """Substitute escaped values; an unknown placeholder raises KeyError (a template bug)."""
    return Template(text).substitute({k: escape(v, fmt) for k, v in values.items()})


def render(
    book: TemplateBook, kind: str, language: str, values: Mapping[str, Any]
) -> RenderedMessage:
    template, used = book.template(kind, language)
    filled = {fmt: fill(getattr(template, fmt), values, fmt) for fmt in FORMATS}
    return RenderedMessage(kind=kind, language=used, requested_language=language, **filled)


def html_list(items: list[str]) -> Markup:
    """An HTML list of plain-text items (each escaped)."""
    return Markup("".join(f"<li>{html.escape(item, quote=True)}</li>" for item in items))


def parse_book(files: Mapping[str, Mapping[str, Any]]) -> TemplateBook:
    """A book from parsed YAML documents by file stem (``common`` holds the fragments)."""
    common = files["common"]
    templates = {
        str(doc["kind"]): {lang: dict(fmts) for lang, fmts in doc["languages"].items()}
        for stem, doc in files.items()
        if stem != "common"
    }
    for kind, by_language in templates.items():
        _check_template(kind, by_language)
    fragments = {lang: dict(texts) for lang, texts in common["languages"].items()}
    return TemplateBook(version=str(common["version"]), templates=templates, fragments=fragments)


def _check_template(kind: str, by_language: Mapping[str, Mapping[str, str]]) -> None:
    if DEFAULT_LANGUAGE not in by_language:
        raise ValueError(f"template {kind}: no {DEFAULT_LANGUAGE} version")
    MessageTemplate.model_validate(by_language[DEFAULT_LANGUAGE])
    for language, formats in by_language.items():
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"template {kind}/{language}: unknown formats {sorted(unknown)}")


@cache
def load_book() -> TemplateBook:
    """The templates shipped with this build (shared layer data)."""
    folder = DATA_FOLDER.joinpath("notifications")
    files = {
        entry.name.removesuffix(".yaml"): load(folder, entry.name)
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }
    return parse_book(files)
