"""The assistant's search index: SQLite FTS5 (Python's standard library), in memory, built once
per process from the versioned content on first use; ranked by FTS5's bm25().

Documents arrive already turned into terms (`aftercare.domain.assist.terms`: words, and CJK
runs as unigrams + bigrams separated by spaces), so the `unicode61` tokenizer only splits on
the spaces and `porter` stems the English words (queries go through the same tokenizer).
Coverage (which query terms a hit contains) is one indexed lookup per term and hit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from aftercare.domain.assist import Document, Hit

SCHEMA = "CREATE VIRTUAL TABLE docs USING fts5(body, tokenize = 'porter unicode61')"


def phrase(term: str) -> str:
    """An FTS5 string literal (a phrase of one term)."""
    return '"' + term.replace('"', '""') + '"'


class SqliteFtsIndex:
    """SearchIndex on an in-memory SQLite FTS5 table."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self._documents = list(documents)
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(":memory:", check_same_thread=False)
            db.execute(SCHEMA)
            db.executemany(
                "INSERT INTO docs(rowid, body) VALUES (?, ?)",
                [(n, d.text) for n, d in enumerate(self._documents, start=1)],
            )
            self._db = db
        return self._db

    def search(self, query: Sequence[str], limit: int) -> list[Hit]:
        if not query:
            return []
        match = " OR ".join(phrase(t) for t in query)
        rows = self.db.execute(
            "SELECT rowid, bm25(docs) FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?",
            (match, limit),
        ).fetchall()
        return [
            Hit(
                doc_id=self._documents[rowid - 1].doc_id,
                score=score,
                matched=frozenset(t for t in query if self._contains(rowid, t)),
            )
            for rowid, score in rows
        ]

    def _contains(self, rowid: int, term: str) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM docs WHERE docs MATCH ? AND rowid = ?", (phrase(term), rowid)
        ).fetchone()
        return found is not None
