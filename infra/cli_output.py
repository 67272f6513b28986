"""How `aftercare` prints: JSON for scripts (`--json`), Rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

CELL_WIDTH = 60
PIPE_WIDTH = 200  # rows piped to a file or `less` are not squeezed into 80 columns


def emit(rows: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """`rows` as JSON, or as a table: a list of rows with `columns`, a dict as field/value."""
    if as_json:
        print_json(rows)
        return
    if isinstance(rows, dict):
        _console().print(field_table(rows))
        return
    console = _console()
    console.print(rows_table(rows, columns))
    console.print(Text(f"({len(rows)} rows)"))


def print_json(document: Any) -> None:
    """The `--json` form, byte for byte what scripts have always read."""
    json.dump(document, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Table:
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(show_edge=False)
    for col in cols:
        table.add_column(col, overflow="ellipsis", max_width=CELL_WIDTH, no_wrap=True)
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in cols))
    return table


def field_table(document: dict[str, Any]) -> Table:
    table = Table("field", "value", show_edge=False)
    for key, value in document.items():
        shown = json.dumps(value, default=str, ensure_ascii=False) if _nested(value) else value
        table.add_row(str(key), cell(shown))
    return table


def print_summary(title: str, document: dict[str, Any]) -> None:
    """A report as a titled two-column table; nothing cut (nested values as compact JSON)."""
    table = Table(title=title, title_justify="left", show_header=False, show_edge=False)
    table.add_column("figure", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in document.items():
        shown = json.dumps(value, ensure_ascii=False) if _nested(value) else str(value)
        table.add_row(Text(key.replace("_", " ")), Text(shown))
    console = _console()
    console.print()
    console.print(table)


def cell(value: Any) -> Text:
    """One value as a table cell: `-` for none, long text cut (markup is never interpreted)."""
    text = "-" if value is None else str(value)
    return Text(text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "...")


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list)


def _console() -> Console:
    # Built per call: sys.stdout may have been swapped (tests, redirection) since import.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, width=width, highlight=False, markup=False)
