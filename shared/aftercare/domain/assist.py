"""The answer service (POST /assist): common questions answered from the versioned content (the
troubleshooting guides and `data/faq.yaml`), with a confidence, and an offer to open a ticket
when the content does not answer well enough.

Retrieval is lexical (BM25 over a full-text index, `aftercare.adapters.assist_index`), so it
runs inside Lambda with no model service. Chinese has no spaces between words: every run of CJK
characters is written into the indexed text (and the query) as its character unigrams and
bigrams, so "风扇不转" finds "风扇停转" by 风扇/风/扇/转. English goes through the index's
Porter stemmer. One document per guide or FAQ entry holds both languages, so a question in
either (or mixed, "Wi-Fi 老是断") finds it; the answer is written in the asked language.

Confidence is the share of the question's content terms (weighted: a CJK bigram or an English
word 2, a CJK character 1) that the best document contains: BM25 ranks, coverage says how much
of the question the answer speaks to, comparable across questions and languages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.guides import Guide, GuideBook, Localized
from aftercare.domain.rules import FaultCatalog
from aftercare.models.guides import GuideLanguage

OFFER_TICKET_BELOW = 0.5  # confidence under which the answer offers to open a ticket
MAX_ANSWERS = 3
MIN_CONFIDENCE = 0.2  # answers below this are not shown at all
MAX_QUERY_TERMS = 48

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_PIECES = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:-[a-z0-9]+)*")
_IS_CJK = re.compile(rf"[{_CJK}]")


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)


class Faq(_Content):
    id: str = Field(pattern=r"^F-[A-Z0-9-]{1,60}$")
    question: Localized
    answer: Localized
    keywords: tuple[str, ...] = ()


class Stopwords(_Content):
    en: tuple[str, ...] = ()
    zh_cn: tuple[str, ...] = Field(default=(), alias="zh-CN")

    def all(self) -> frozenset[str]:
        return frozenset(self.en) | frozenset(self.zh_cn)


class FaqBook(_Content):
    version: str
    faqs: tuple[Faq, ...]
    stopwords: Stopwords = Field(default_factory=Stopwords)


@cache
def load_faqs() -> FaqBook:
    """The FAQ shipped with this build (shared layer data; the layer reads its JSON twin)."""
    data = load(DATA_FOLDER, "faq.yaml")
    return FaqBook.model_validate({**data, "version": str(data["version"])})


class Document(_Content):
    """One searchable entry: a guide or an FAQ answer, both languages in its text."""

    doc_id: str  # the guide's or FAQ entry's id
    code: str | None = None  # a guide's fault code
    model: str | None = None  # a model-specific guide's model
    text: str  # what the index holds (already turned into terms)


def terms(text: str) -> list[str]:
    """Index/query terms: lower-cased words (a hyphenated one also joined), and every CJK run as
    its unigrams then bigrams."""
    found: list[str] = []
    for piece in _PIECES.findall(text.lower()):
        if _IS_CJK.match(piece):
            found += list(piece)
            found += [piece[i : i + 2] for i in range(len(piece) - 1)]
        elif "-" in piece:  # "wi-fi": the parts, and "wifi" as people also write it
            found += [*piece.split("-"), piece.replace("-", "")]
        else:
            found.append(piece)
    return found


def query_terms(question: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
    """The question's distinct content terms, in order (stopwords dropped)."""
    seen: dict[str, None] = {}
    for term in terms(question):
        if term not in stopwords and len(seen) < MAX_QUERY_TERMS:
            seen.setdefault(term, None)
    return list(seen)


def weight(term: str) -> int:
    return 1 if len(term) == 1 and _IS_CJK.match(term) else 2


def _text(*parts: str | Iterable[str]) -> str:
    flat = [p if isinstance(p, str) else " ".join(p) for p in parts]
    return " ".join(terms(" ".join(flat)))


def guide_document(guide: Guide, catalog: FaultCatalog) -> Document:
    entry = catalog.lookup(guide.code)
    names = [entry.title_en, entry.title_zh] if entry else []
    steps = [text for s in guide.steps for text in (s.en, s.zh_cn)]
    title = [guide.title.en, guide.title.zh_cn]
    # Titles count twice: what the guide is about outweighs what its steps mention in passing.
    text = _text(title, title, names, steps)
    return Document(doc_id=guide.id, code=guide.code, model=guide.model, text=text)


def faq_document(faq: Faq) -> Document:
    question = [faq.question.en, faq.question.zh_cn]
    text = _text(question, question, faq.keywords, [faq.answer.en, faq.answer.zh_cn])
    return Document(doc_id=faq.id, text=text)


def documents(guides: GuideBook, faqs: FaqBook, catalog: FaultCatalog) -> list[Document]:
    return [guide_document(g, catalog) for g in guides.guides] + [
        faq_document(f) for f in faqs.faqs
    ]


class Hit(BaseModel):
    """A document the index found, its BM25 rank score (lower is better, as SQLite's bm25())
    and which of the query's terms it contains."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    doc_id: str
    score: float
    matched: frozenset[str]


class SearchIndex(Protocol):
    """A full-text index over the documents, built once."""

    def search(self, query: Sequence[str], limit: int) -> list[Hit]:
        """The best `limit` documents containing any of the `query` terms, best first."""
        ...


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: str = Field(description="guide | faq")
    code: str | None = Field(default=None, description="a guide's fault code")
    guide: str | None = Field(default=None, description="the guide's id (GET /guides)")
    faq: str | None = Field(default=None, description="the FAQ entry's id")
    title: str
    text: str
    steps: list[str] = Field(default_factory=list, description="a guide's steps, in order")
    confidence: float = Field(ge=0, le=1)


class AssistAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    answers: list[Answer]
    offer_ticket: bool = Field(description="true when no answer is confident enough")
    suggested_symptom: str | None = Field(
        default=None, description="the best guide's fault code, a `symptom` for POST /tickets"
    )
    content_version: str = Field(description="guides and FAQ versions the answer used")


class Assistant:
    """Answers questions from the guides and the FAQ through a search index."""

    def __init__(
        self, index: SearchIndex, guides: GuideBook, faqs: FaqBook, catalog: FaultCatalog
    ) -> None:
        self.index = index
        self.guides = guides
        self.faqs = {f.id: f for f in faqs.faqs}
        self.stopwords = faqs.stopwords.all()
        self.catalog = catalog
        self.version = f"guides {guides.version}, faq {faqs.version}"

    def ask(self, question: str, lang: GuideLanguage, model: str | None = None) -> AssistAnswer:
        query = query_terms(question, self.stopwords)
        total = sum(weight(t) for t in query)
        hits = [h for h in self.index.search(query, limit=12) if self._fits(h.doc_id, model)]
        answers = []
        for hit in hits:
            confidence = sum(weight(t) for t in hit.matched) / total if total else 0.0
            if confidence >= MIN_CONFIDENCE:
                answers.append(self._answer(hit.doc_id, lang, round(confidence, 2)))
            if len(answers) == MAX_ANSWERS:
                break
        best = answers[0] if answers else None
        return AssistAnswer(
            answers=answers,
            offer_ticket=best is None or best.confidence < OFFER_TICKET_BELOW,
            suggested_symptom=next((a.code for a in answers if a.code), None),
            content_version=self.version,
        )

    def _fits(self, doc_id: str, model: str | None) -> bool:
        """Without a model every document fits; with one, a guide fits when it is the one
        `GuideBook.find` would give that model for its code."""
        guide = self.guides.by_id(doc_id)
        if guide is None or model is None:
            return True
        entry = self.catalog.lookup(guide.code)
        if entry is not None and model not in entry.models:
            return False
        chosen = self.guides.find(guide.code, model)
        return chosen is not None and chosen.id == guide.id

    def _answer(self, doc_id: str, lang: GuideLanguage, confidence: float) -> Answer:
        guide = self.guides.by_id(doc_id)
        if guide is not None:
            view = guide.view(lang, self.guides.version)
            steps = [s.text for s in view.steps]
            text = view.title + "\n" + "\n".join(f"{n}. {s}" for n, s in enumerate(steps, 1))
            return Answer(
                kind="guide",
                code=guide.code,
                guide=guide.id,
                title=view.title,
                text=text,
                steps=steps,
                confidence=confidence,
            )
        faq = self.faqs[doc_id]
        return Answer(
            kind="faq",
            faq=faq.id,
            title=faq.question.text(lang),
            text=faq.answer.text(lang),
            confidence=confidence,
        )


def ranked_ids(answer: AssistAnswer) -> list[str]:
    """The answer's guide/FAQ ids, best first (the evaluation compares these)."""
    return [a.guide or a.faq or "" for a in answer.answers]


def describe(answer: AssistAnswer) -> dict[str, Any]:
    return answer.model_dump(mode="json")
