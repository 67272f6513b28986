"""`aftercare incidents show|resolve`: the campaign's progress line and `--wait`'s polling, on
a stand-in API client."""

from __future__ import annotations

from typing import Any

import pytest

from infra import cli_incidents
from infra.cli_core import CliError

CAMPAIGN = {
    "fix": "reset_component",
    "started_by": "user:eng-ada",
    "page_size": 400,
    "pages_done": 1,
    "sent": 390,
    "not_sent": 2,
    "already_closed": 8,
    "finished_at": None,
}


def view(status: str, **campaign: Any) -> dict[str, Any]:
    return {
        "incident": {"incident_id": "INC-1", "status": status},
        "stats": {"children": 1000},
        "children_by_status": {"open": 1000},
        "campaign": CAMPAIGN | campaign,
    }


class Polled:
    """Answers GET with the next view of `views` (the last one forever)."""

    def __init__(self, *views: dict[str, Any]) -> None:
        self.views = list(views)
        self.gets = 0

    def get(self, path: str) -> dict[str, Any]:
        self.gets += 1
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]


def test_show_prints_the_campaign_progress_as_one_line():
    fields = cli_incidents.summary(view("mitigating"))
    assert fields["campaign"] == (
        "reset_component by user:eng-ada, running: 400/1000 children: sent 390, not_sent 2, "
        "already_closed 8 (1 of ~3 pages sent)"
    )


def test_wait_polls_until_the_campaign_resolved_the_incident(monkeypatch):
    monkeypatch.setattr(cli_incidents, "POLL_INTERVAL_S", 0)
    done = view("resolved", pages_done=3, sent=990, finished_at="2026-12-07T03:00:00Z")
    client = Polled(view("mitigating"), view("mitigating", pages_done=2), done)
    assert cli_incidents.wait_resolved(client, "INC-1", 60) == done  # type: ignore[arg-type]
    assert client.gets == 3


def test_wait_gives_up_with_the_status_it_saw(monkeypatch):
    monkeypatch.setattr(cli_incidents, "POLL_INTERVAL_S", 0)
    with pytest.raises(CliError, match="still mitigating"):
        cli_incidents.wait_resolved(Polled(view("mitigating")), "INC-1", 0)  # type: ignore[arg-type]
