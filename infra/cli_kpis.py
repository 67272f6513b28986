"""`aftercare kpis`: the service KPIs of a period, through the API (`GET /kpis`).

    aftercare kpis --json [--by region] [--from 2026-11-01] [--to 2026-11-30]
    aftercare kpis --by day --from 2026-11-01          # the trend: one row per day

Managers see every group; a logged-in engineer only their own figures. Definitions: README
"Service KPIs".
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from infra.cli_core import StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import required_client

FLAT_COLUMNS = ("group", "opened", "resolved", "response_median_min", "first_time_fix_rate", "csat")


def _row(figures: dict[str, Any]) -> dict[str, Any]:
    group = figures.get("group") or {"all": "all"}
    kpis = figures["kpis"]
    return {"group": "=".join(next(iter(group.items())))} | {
        k: kpis.get(k) for k in FLAT_COLUMNS[1:]
    }


@stack_command
def kpis_command(
    by: Annotated[
        str | None,
        typer.Option(
            help="region | model | category | engineer | partner | channel | priority, "
            "or day (one row per day of the period)"
        ),
    ] = None,
    first: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD (UTC, inclusive)")] = None,
    last: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD (default today)")] = None,
    *,
    opts: StackOptions,
) -> None:
    """Service KPIs: `{"period", "kpis"}`, or one such object per group with `--by`."""
    result = required_client(opts).get("/kpis", by=by, **{"from": first, "to": last})
    if opts.json:
        emit(result, True)
        return
    rows = result if isinstance(result, list) else [result]
    emit([_row(r) for r in rows], False, list(FLAT_COLUMNS))
