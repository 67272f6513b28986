"""`aftercare incidents list|show|resolve`: fleet incidents through the support API (engineers
and managers; see README "Fleet incidents").

    aftercare incidents list --json
    aftercare incidents show INC-... --json
    aftercare incidents resolve INC-... --fix reset_component
    aftercare incidents resolve INC-... --fix firmware_fix --note "2.4.1 fixes the crash loop"
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from infra.cli_core import StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import required_client

incidents_app = typer.Typer(help="fleet incidents: fault storms as one problem record")
IdArg = Annotated[str, typer.Argument(show_default=False, help="the incident's id")]
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
        fields["campaign"] = view["campaign"]
    return fields


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
    *,
    opts: StackOptions,
) -> None:
    """Resolve an incident: a paced fix campaign to its devices; confirmed children resolve."""
    body: dict[str, Any] = {"fix": fix} | ({"note": note} if note else {})
    view = required_client(opts).post(f"/incidents/{quote(incident_id, safe='')}/resolve", body)
    emit(view if opts.json else summary(view), opts.json)
