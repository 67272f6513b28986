"""The `aftercare` command tree: what README lists, what the Lambda layer must not need."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from infra.cli import app, main

ROOT = Path(__file__).resolve().parents[2]
STACK_FLAGS = {"--json", "--aws", "--stage", "--state-dir", "--stack-name", "--aws-region"}


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from commands(sub, (*path, name))


def cli_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Engineer CLI", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_every_command():
    # Given the app's command tree and README's CLI reference
    listed = cli_section()
    for path, _ in commands(typer.main.get_command(app)):
        group, *leaf = path
        # Then each group is listed, each leaf command under it on its line
        line = next((ln for ln in listed.splitlines() if ln.startswith(f"aftercare {group} ")), "")
        assert line, f"README does not list `aftercare {group}`"
        assert all(re.search(rf"\b{name}\b", line) for name in leaf), f"{path} not on: {line}"


def test_every_stack_command_keeps_the_stack_options():
    root = typer.main.get_command(app)
    passthrough = {("local",), ("device",), ("demo",)}
    for path, command in commands(root):
        if path in passthrough:
            continue
        flags = {flag for param in command.params for flag in param.opts}
        assert flags >= STACK_FLAGS, f"aftercare {' '.join(path)} lacks {STACK_FLAGS - flags}"


def test_the_lambda_code_does_not_import_the_cli_libraries():
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] in {"typer", "rich", "click"} for n in names), path


def test_a_missing_subcommand_is_a_usage_error(capsys):
    assert main(["tickets"]) == 2
    assert "Missing command" in capsys.readouterr().err


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "tickets" in capsys.readouterr().out
