"""`aftercare guides list` and `aftercare assist`: the contract's JSON shapes (no stack needed:
without a login the shipped content answers)."""

from __future__ import annotations

import json
from pathlib import Path

from infra.cli import main as cli_main


def test_guides_list_prints_every_guide_as_one_json_array(capsys, tmp_path: Path):
    assert cli_main(["guides", "list", "--json", "--state-dir", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 6
    assert {"guide_id", "code", "model", "self_service", "title", "steps"} <= set(rows[0])


def test_assist_prints_answers_and_the_ticket_offer(capsys, tmp_path: Path):
    assert cli_main(["assist", "风扇不转了", "--json", "--state-dir", str(tmp_path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["offer_ticket"] is False
    best = answer["answers"][0]
    assert best["code"] == "FAN-STALL" and best["text"] and 0 < best["confidence"] <= 1


def test_assist_with_an_unknown_language_exits_with_a_reason(capsys, tmp_path: Path):
    code = cli_main(["assist", "fan", "--lang", "fr", "--json", "--state-dir", str(tmp_path)])
    assert code != 0 and "unknown language" in capsys.readouterr().err
