"""Size limits that keep the code reviewable: no file in shared/, infra/ or devices/ over 500
lines and no class over 250 lines (issue: one way to do each thing)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("shared", "infra", "devices")
MAX_FILE_LINES = 500
MAX_CLASS_LINES = 250


def _sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def oversized_files(paths: list[Path], limit: int = MAX_FILE_LINES) -> list[str]:
    found = []
    for path in paths:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found.append(
                f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {lines}"
            )
    return found


def oversized_classes(paths: list[Path], limit: int = MAX_CLASS_LINES) -> list[str]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > limit:
                    found.append(f"{path.name}:{node.name}: {size}")
    return found


def test_given_the_tree_then_no_file_is_over_the_limit() -> None:
    assert oversized_files(_sources()) == []


def test_given_the_tree_then_no_class_is_over_the_limit() -> None:
    assert oversized_classes(_sources()) == []


@pytest.mark.parametrize("lines", [MAX_FILE_LINES + 1, 900])
def test_given_a_long_file_then_it_is_reported(tmp_path: Path, lines: int) -> None:
    # Given a module longer than the limit
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * lines, encoding="utf-8")
    # When checked / Then it is named with its length
    assert oversized_files([big]) == [f"{big}: {lines}"]


def test_given_a_long_class_then_it_is_reported(tmp_path: Path) -> None:
    # Given a class longer than the limit
    body = "".join(f"    a{i} = {i}\n" for i in range(MAX_CLASS_LINES))
    module = tmp_path / "fat.py"
    module.write_text("class Fat:\n" + body, encoding="utf-8")
    # When checked / Then it is named
    assert oversized_classes([module]) == [f"fat.py:Fat: {MAX_CLASS_LINES + 1}"]
