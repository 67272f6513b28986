"""`aftercare incidents list|show|resolve`: fleet incidents through the support API (engineers
and managers; see README "Fleet incidents").

    aftercare incidents list --json
    aftercare incidents show INC-... --json
    aftercare incidents resolve INC-... --fix reset_component           # returns at once
    aftercare incidents resolve INC-... --fix reset_component --wait    # until it is resolved
    aftercare incidents resolve INC-... --fix firmware_fix --note "2.4.1 fixes the crash loop"
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any
from urllib.parse import quote

import typer

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import ApiClient, required_client

incidents_app = typer.Typer(help="fleet incidents: fault storms as one problem record")
IdArg = Annotated[str, typer.Argument(show_default=False, help="the incident's id")]
POLL_INTERVAL_S = 2.0
LIST_FIELDS = ["incident_id", "codes", "model", "children", "status", "opened_at"]
SUMMARY_STATS = (
    "children",
    "linked_before",
    "diagnostics_sent",
    "diagnostics_skipped",
    "reservations_held",
    "reservations_avoided",
    "messages_sent",
    "messages_saved",
)


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """One incident as a flat field/value table (the `--json` form has everything)."""
    incident, stats = view["incident"], view["stats"]
    fields = {k: incident.get(k) for k in ("incident_id", "fault_code", "model", "status")}
    fields["category"] = incident.get("category")
    fields["codes"] = _codes(incident)
    fields |= {k: stats.get(k) for k in SUMMARY_STATS}
    fields["firmware_versions"] = ", ".join(stats.get("firmware_versions", []))
    fields["regions"] = ", ".join(stats.get("regions", []))
    fields["backorder"] = ", ".join(f"{k} x{v}" for k, v in stats.get("backorder", {}).items())
    fields["trend"] = " ".join(f"{k[-4:]}:{v}" for k, v in stats.get("trend", {}).items())
    fields["children_by_status"] = view.get("children_by_status")
    if view.get("campaign"):
        fields["campaign"] = campaign_progress(view["campaign"], stats.get("children", 0))
    return fields


def campaign_progress(campaign: dict[str, Any], children: int) -> str:
    """`reset_component by user:ada, running: 412/60000 children: sent 400, not_sent 2,
    already_closed 10 (1 of ~150 pages sent)`."""
    counts = {k: int(campaign.get(k, 0)) for k in ("sent", "not_sent", "already_closed")}
    walked = sum(counts.values())
    pages = -(-children // max(1, int(campaign.get("page_size", 1))))
    done = f"finished {campaign['finished_at']}" if campaign.get("finished_at") else "running"
    return (
        f"{campaign.get('fix')} by {campaign.get('started_by')}, {done}: {walked}/{children} "
        f"children: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" ({campaign.get('pages_done', 0)} of ~{pages} pages sent)"
    )


def wait_resolved(client: ApiClient, incident_id: str, limit_s: float) -> dict[str, Any]:
    """Poll the incident until its campaign resolved it (or `limit_s` passes)."""
    path = f"/incidents/{quote(incident_id, safe='')}"
    started = time.monotonic()
    view = client.get(path)
    while view["incident"]["status"] != "resolved":
        if time.monotonic() - started > limit_s:
            raise CliError(
                f"{incident_id} is still {view['incident']['status']} after {limit_s:.0f} s"
            )
        time.sleep(POLL_INTERVAL_S)
        view = client.get(path)
        if view.get("campaign"):
            progress = campaign_progress(view["campaign"], view["stats"].get("children", 0))
            print(f"  {time.monotonic() - started:5.1f}s  {progress}", file=sys.stderr, flush=True)
    return dict(view)


def _codes(incident: dict[str, Any]) -> str:
    """The codes an incident covers (records from before grouping name only `fault_code`)."""
    return ", ".join(incident.get("codes") or [str(incident.get("fault_code"))])


@incidents_app.command("list")
@stack_command
def incidents_list(*, opts: StackOptions) -> None:
    """Fleet incidents, newest first."""
    rows = required_client(opts).get("/incidents")
    if opts.json:
        emit([{k: r.get(k) for k in LIST_FIELDS} | r for r in rows], True)
        return
    table = [{k: r.get(k) for k in LIST_FIELDS} | {"codes": _codes(r)} for r in rows]
    emit(table, False, LIST_FIELDS)


@incidents_app.command("show")
@stack_command
def incidents_show(incident_id: IdArg, *, opts: StackOptions) -> None:
    """One incident: counts, firmware versions, regions, trend, affected devices."""
    view = required_client(opts).get(f"/incidents/{quote(incident_id, safe='')}")
    emit(view if opts.json else summary(view), opts.json)


@incidents_app.command("resolve")
@stack_command
def incidents_resolve(
    incident_id: IdArg,
    fix: Annotated[str, typer.Option(help="reset_component | firmware_fix")],
    note: Annotated[str | None, typer.Option(help="firmware_fix: the fixed firmware")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="poll until the campaign has resolved the incident")
    ] = False,
    wait_s: Annotated[float, typer.Option(help="--wait gives up after this many seconds")] = 3600,
    *,
    opts: StackOptions,
) -> None:
    """Start an incident's fix campaign (queued: returns at once, the incident `mitigating`);
    a worker sends it to the devices, paced, and resolves the incident after the last page.
    Confirmed children resolve `fleet_fix`."""
    body: dict[str, Any] = {"fix": fix} | ({"note": note} if note else {})
    client = required_client(opts)
    view = client.post(f"/incidents/{quote(incident_id, safe='')}/resolve", body)
    if wait:
        view = wait_resolved(client, incident_id, wait_s)
    emit(view if opts.json else summary(view), opts.json)
