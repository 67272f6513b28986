"""The web console in a real browser (Debian's headless Chromium through Playwright) against
the shared local stack: the console served by the API's ConsoleFunction, sign-in against the
stack's moto user pool, and every data call through the local API gateway with the user's ID
token. Simulated devices answer over Mosquitto.

Devices and codes no other shared-stack test uses: ev-ch-0006 EVSE-CABLE-TEMP for the
engineer, rt-x-0197 FLASH-WEAR for the engineer's visit, ic-300-0003 (c-0003) PSU-UNDERVOLT for
the customer, ev-ch-0042 and ev-ch-0122 EVSE-GROUNDFAULT for the manager's KPI scenario.

Screenshots of each main page go to artifacts/console/ (git-ignored; docs/ keeps two copies).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.notifications_store import DynamoNotificationStore
from aftercare.domain.notifications import Survey
from aftercare.domain.surveys import survey_id_for
from aftercare.models.field import Booking, BookingSource, BookingStatus
from aftercare.models.tickets import TicketSummary
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devices.agent import DeviceAgent
from infra.local.provision_api import LOCAL_PASSWORD
from tests.e2e.api_user import ApiUser
from tests.e2e.conftest import Stack, device_agent_config, publish_as, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)  # every wait is on content; a loaded machine is slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (installs chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def signed_in(browser: Browser, stack: Stack, user: str, width: int = 1280) -> Page:
    """A new browser page with `user` signed in through the console's own form."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(stack.state["console_url"])
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(LOCAL_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert not errors, errors
    return page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def start_agent(stack: Stack, thing: str, outbox: Path) -> DeviceAgent:
    agent = DeviceAgent(device_agent_config(stack.state, thing, outbox))
    assert agent.start(connect_timeout=10)
    return agent


def ticket_of(user: ApiUser, thing: str, code: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        rows = [r for r in user.get(f"/tickets?thing={thing}") if r["fault_code"] == code]
        return next((r for r in rows if r["status"] not in ("resolved", "closed")), None)

    return wait_for(find, timeout=90, what=f"{code} ticket on {thing}")


def test_console_page_is_served_with_its_cache_rules(local_stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(local_stack.state["console_url"], timeout=10) as response:
        assert response.headers["cache-control"] == "no-cache"
        assert "/console/assets/" in response.read().decode()


def test_an_engineer_sees_the_queue_opens_a_ticket_and_runs_a_diagnostic(
    local_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    thing, code = "ev-ch-0006", "EVSE-CABLE-TEMP"
    engineer = ApiUser(local_stack, "eng-ada")
    # (a telemetry report first: publishing as the device would disconnect its agent)
    report = {"firmware": "2.1.0", "uptime_s": 7200, "temp_c": 38.5}
    publish_as(
        local_stack.state,
        thing,
        [
            {
                "topic": f"dt/aftercare/{thing}/telemetry",
                "payload": json.dumps(report | {"sent_at": datetime.now(UTC).isoformat()}),
                "qos": 1,
            }
        ],
    )
    agent = start_agent(local_stack, thing, tmp_path / "outbox")
    try:
        # Given an engineer signed in, looking at the queue
        page = signed_in(browser, local_stack, "eng-ada")
        expect(page.get_by_role("heading", name="Ticket queue")).to_be_visible()
        listings: list[str] = []
        page.on("request", lambda r: listings.append(r.url) if "/tickets?" in r.url else None)
        # When a charger reports a fault
        agent.raise_fault(code)
        ticket_id = ticket_of(engineer, thing, code)["ticket_id"]
        # Then its ticket appears in the queue without a reload (the queue polls)
        row = page.locator(f'tr[data-ticket="{ticket_id}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text(code)
        shot(page, "engineer-queue")
        # And the polls asked only for what changed since the previous one (the first page is
        # read again once a minute)
        deltas = [u for u in listings if "updated_since=" in u]
        assert deltas and len(deltas) >= len(listings) - 1 - len(listings) // 15, listings
        # When the engineer opens it
        row.get_by_role("link", name=ticket_id).click()
        expect(page.get_by_role("heading", name=ticket_id)).to_be_visible()
        expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
        # And runs a self test from the ticket page
        page.get_by_label("Routine").select_option("self_test")
        page.get_by_role("button", name="Run").click()
        # Then the device's answer appears on the page
        result = page.locator("#diag-result")
        expect(result).to_be_visible()
        assert result.get_attribute("data-status") in ("passed", "failed", "unsupported")
        expect(result).to_contain_text("Self test")
        shot(page, "engineer-ticket")
        # And the answer is the device's, recorded on the ticket
        diagnostics = engineer.get(f"/tickets/{ticket_id}/diagnostics")["diagnostics"]
        mine = [d for d in diagnostics if d["purpose"] == "engineer"]
        assert mine and mine[0]["status"] == "completed", mine
        # And the device page shows its health, telemetry chart and ticket history
        wait_for(
            lambda: engineer.get(f"/devices/{thing}/telemetry")["latest"],
            timeout=120,
            what="the telemetry report folded into the device's health",
        )
        page.goto(f"{local_stack.state['console_url']}#/devices/{thing}")
        expect(page.get_by_role("heading", name="Ticket history")).to_be_visible()
        expect(page.get_by_role("link", name=ticket_id)).to_be_visible()
        expect(page.locator("#telemetry-latest")).to_contain_text("38.5")
        expect(page.get_by_role("img", name="Daily mean temperature (°C)")).to_be_visible()
        shot(page, "engineer-device")
        # And a ticket or device that does not exist is "Not found", with a way back
        main = page.get_by_role("main")
        for missing in ("#/tickets/T-NO-SUCH-TICKET", "#/devices/zz-no-such-device"):
            page.goto(f"{local_stack.state['console_url']}#/queue")
            expect(page.get_by_role("heading", name="Ticket queue")).to_be_visible()
            page.goto(f"{local_stack.state['console_url']}{missing}")
            expect(page.get_by_role("heading", name="Not found")).to_be_visible()
            expect(main.get_by_role("link", name="Ticket queue")).to_be_visible()
        page.goto(f"{local_stack.state['console_url']}#/jobs")
        expect(page.get_by_role("heading", name="Today's jobs")).to_be_visible()
        shot(page, "engineer-jobs")
    finally:
        agent.stop(drain_timeout=2)


def booked_for_ada_today(stack: Stack, ticket: dict[str, Any]) -> Booking:
    """A visit for the ticket on E-ada's calendar today, late in the UTC day (a cell no other
    shared-stack test books), written by the calendar as the dispatcher would."""
    resources = stack.state["resources"]
    calendar = DynamoCalendar(
        table=resources["FieldTable"],
        tickets_table=resources["TicketsTable"],
        ddb=stack.target.client("dynamodb"),
    )
    now = datetime.now(UTC)
    start = now.replace(hour=23, minute=30, second=0, microsecond=0)
    booking = Booking(
        booking_id=f"B-{ticket['ticket_id']}",
        ticket_id=ticket["ticket_id"],
        engineer_id="E-ada",
        customer_id=ticket["customer_id"],
        thing=ticket["thing"],
        region=ticket["region"],
        start=start,
        end=start + timedelta(minutes=15),
        time_zone="UTC",
        status=BookingStatus.SCHEDULED,
        source=BookingSource.DISPATCHER,
        created_at=now,
        updated_at=now,
        created_by="user:mgr-grace",
    )
    calendar.book(booking, now)
    return booking


def test_an_engineer_reports_a_visit_through_to_complete_from_todays_jobs(
    local_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    thing, code = "rt-x-0197", "FLASH-WEAR"  # not auto-diagnosed: no routine of its own
    engineer = ApiUser(local_stack, "eng-ada")
    agent = start_agent(local_stack, thing, tmp_path / "outbox")
    try:
        # Given a router's fault ticket with a visit on Ada's calendar today
        agent.raise_fault(code)
        ticket_id = ticket_of(engineer, thing, code)["ticket_id"]
        booking = booked_for_ada_today(local_stack, engineer.get(f"/tickets/{ticket_id}"))
        # When Ada opens today's jobs
        page = signed_in(browser, local_stack, "eng-ada")
        page.get_by_role("link", name="Today's jobs").click()
        row = page.locator(f'tr[data-booking="{booking.booking_id}"]')
        expect(row).to_contain_text("Scheduled")
        # And, on her phone, sets off and arrives while this page still shows the job scheduled
        phone = signed_in(browser, local_stack, "eng-ada", width=375)
        phone.goto(f"{local_stack.state['console_url']}#/jobs")
        job = phone.locator(f'tr[data-booking="{booking.booking_id}"]')
        job.get_by_role("button", name="On my way").click()
        expect(phone.locator("#job-result")).to_have_attribute("data-status", "en_route")
        job.get_by_role("button", name="Arrived on site").click()
        expect(phone.locator("#job-result")).to_have_attribute("data-status", "on_site")
        expect(job).to_contain_text("In repair")
        phone.close()
        # When she presses "On my way" on the page that did not see that
        row.get_by_role("button", name="On my way").click()
        # Then it is refused with the reason, and the list shows the job as it is now
        expect(page.locator("#job-outcome [role=alert]")).to_contain_text("stale_version")
        expect(row).to_contain_text("On site")
        expect(row).to_contain_text("In repair")
        # And repairs the device, then completes with the parts she used
        agent.state.clear([code])
        row.get_by_role("button", name="Complete", exact=True).click()
        form = page.locator("#complete-form")
        expect(form).to_be_visible()
        form.get_by_label("Notes (optional)").fill("flash module replaced")
        shot(page, "engineer-job-complete")
        form.get_by_role("button", name="Complete").click()
        # Then the job is completed, with nothing left to report on it
        expect(page.locator("#job-result")).to_have_attribute("data-status", "completed")
        expect(row).to_contain_text("Completed")
        expect(row.get_by_role("button")).to_have_count(0)
        # And once the device verified the fix, the ticket shows the result
        wait_for(
            lambda: engineer.get(f"/tickets/{ticket_id}")["status"] == "resolved",
            timeout=150,
            what="the visit verified by the device",
        )
        row.get_by_role("link", name=ticket_id).click()
        expect(page.get_by_role("heading", name=ticket_id)).to_be_visible()
        expect(page.locator("dl.facts")).to_contain_text("Resolved")
        visits = page.locator("section", has_text="Visits and job status")
        expect(visits).to_contain_text("Completed")
        expect(page.locator("ol.timeline")).to_contain_text("visit_completed")
        shot(page, "engineer-job-ticket")
        page.close()
    finally:
        agent.stop(drain_timeout=2)


def sent_survey(stack: Stack, ticket: dict[str, Any]) -> str:
    """The ticket's survey, sent now (the stack's survey delay is a day)."""
    resources = stack.state["resources"]
    store = DynamoNotificationStore(
        table=resources["NotificationsTable"],
        tickets_table=resources["TicketsTable"],
        customers_table=resources["CustomersTable"],
        ddb=stack.target.client("dynamodb"),
    )
    now = datetime.now(UTC)
    survey = Survey(
        survey_id=survey_id_for(ticket["ticket_id"]),
        ticket_id=ticket["ticket_id"],
        customer_id=ticket["customer_id"],
        facts=TicketSummary.model_validate(ticket),
        created_at=now,
        due_at=now,
    )
    store.schedule_survey(survey)
    store.settle_survey(survey.survey_id, "sent", sent_at=now, retry_at=None)
    return survey.survey_id


def test_a_customer_sees_only_their_own_books_a_visit_and_answers_the_survey(
    local_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    thing, code = "ic-300-0003", "PSU-UNDERVOLT"
    customer = ApiUser(local_stack, "cust-0003")
    agent = start_agent(local_stack, thing, tmp_path / "outbox")
    try:
        # Given c-0003's controller reported an under-voltage
        agent.raise_fault(code)
        ticket_id = ticket_of(customer, thing, code)["ticket_id"]
    finally:
        agent.stop(drain_timeout=2)
    # When the customer signs in (on a phone-width screen)
    page = signed_in(browser, local_stack, "cust-0003", width=375)
    # Then they see their own devices, and only those
    expect(page.get_by_role("heading", name="My devices")).to_be_visible()
    cards = page.locator("li[data-thing]")
    expect(cards.first).to_be_visible()
    mine = {d["thing"] for d in customer.get("/me/devices")}
    assert set(cards.evaluate_all("els => els.map(e => e.dataset.thing)")) == mine
    shot(page, "customer-devices")
    # And can read the console in Simplified Chinese (kept for this user)
    page.get_by_label("Language").select_option("zh-CN")
    expect(page.get_by_role("heading", name="我的设备")).to_be_visible()
    page.get_by_label("语言").select_option("en")
    expect(page.get_by_role("heading", name="My devices")).to_be_visible()
    # And their tickets, only their own
    page.get_by_role("link", name="My tickets").click()
    expect(page.locator(f'tr[data-ticket="{ticket_id}"]')).to_be_visible()
    listed = page.locator("tr[data-ticket]").evaluate_all("els => els.map(e => e.dataset.ticket)")
    assert set(listed) == {r["ticket_id"] for r in customer.get("/tickets?limit=50")}
    # When they open the ticket: a plain-language status and what it costs them
    page.get_by_role("link", name=ticket_id).click()
    expect(page.locator("#plain-status")).to_contain_text("We")
    estimate = customer.get(f"/tickets/{ticket_id}")["estimate"]
    expect(page.locator("#cost")).to_have_attribute("data-pays", str(estimate["customer_pays"]))
    # And book a visit from the offered slots
    page.get_by_role("button", name="Book a visit").click()
    page.locator("input[name=slot]").first.check()
    page.get_by_role("button", name="Book this time").click()
    expect(page.locator("#booked")).to_contain_text("Booked")
    shot(page, "customer-ticket")
    bookings = customer.get(f"/tickets/{ticket_id}/bookings")
    assert [b["status"] for b in bookings] == ["scheduled"]
    # And answer the survey (sent by the survey link, which opens the console's survey page)
    survey_id = sent_survey(local_stack, customer.get(f"/tickets/{ticket_id}"))
    page.goto(f"{local_stack.state['console_url']}#/surveys/{survey_id}")
    page.get_by_label("5 excellent").check()
    page.get_by_label("Comment (optional)").fill("quick and clear")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#survey-thanks")).to_contain_text("5 of 5")
    assert customer.get(f"/surveys/{survey_id}")["rating"] == 5
    shot(page, "customer-survey")
    # And another customer following that ticket's URL is told it is not found
    other = signed_in(browser, local_stack, "cust-0002")
    other.goto(f"{local_stack.state['console_url']}#/my-tickets/{ticket_id}")
    expect(other.get_by_role("heading", name="Not found")).to_be_visible()
    # And so is that ticket's survey
    other.goto(f"{local_stack.state['console_url']}#/surveys/{survey_id}")
    expect(other.get_by_role("heading", name="Not found")).to_be_visible()
    other.close()
    page.close()


def tile(page: Page, kpi: str) -> str:
    return page.locator(f'li[data-kpi="{kpi}"] .tile-value').inner_text()


def test_a_manager_sees_the_kpi_charts_change_after_a_scenario(
    local_stack: Stack, browser: Browser
) -> None:
    manager = ApiUser(local_stack, "mgr-grace")
    today = datetime.now(UTC).date().isoformat()
    before = manager.get(f"/kpis?from={today}&to={today}")["kpis"]["opened"]
    # Given a manager on the KPI dashboard
    page = signed_in(browser, local_stack, "mgr-grace")
    expect(page.get_by_role("heading", name="Service KPIs")).to_be_visible()
    expect(page.locator("#kpi-trend svg")).to_be_visible()
    shown_before = tile(page, "opened")
    # When two chargers report ground faults (a scripted scenario)
    now = datetime.now(UTC).isoformat()
    for thing in ("ev-ch-0042", "ev-ch-0122"):
        fault = {"fault_id": f"console-{uuid.uuid4().hex[:12]}", "code": "EVSE-GROUNDFAULT"}
        payload = json.dumps(fault | {"occurred_at": now, "firmware": "1"})
        publish_as(
            local_stack.state,
            thing,
            [{"topic": f"dt/aftercare/{thing}/fault", "payload": payload, "qos": 1}],
        )
    wait_for(
        lambda: manager.get(f"/kpis?from={today}&to={today}")["kpis"]["opened"] >= before + 2,
        timeout=90,
        what="two more tickets opened in the KPIs",
    )
    # Then the dashboard, read again, shows them: the tile, today's point and the breakdown
    page.reload()
    expect(page.locator('li[data-kpi="opened"] .tile-value')).not_to_have_text(shown_before)
    assert float(tile(page, "opened")) >= float(shown_before) + 2
    last_point = page.locator("#kpi-trend circle title").last.text_content() or ""
    assert last_point.endswith(str(manager.get(f"/kpis?from={today}&to={today}")["kpis"]["opened"]))
    expect(page.locator("#kpi-breakdown g.bar").first).to_be_visible()
    shot(page, "manager-kpis")
    # Given the scenario's two visits booked with one engineer, in slots the calendar offered
    first, second = (
        ticket_of(manager, thing, "EVSE-GROUNDFAULT") for thing in ("ev-ch-0042", "ev-ch-0122")
    )
    booked = booked_with_one_engineer(manager, first["ticket_id"], second["ticket_id"])
    # When the manager opens the board of the second visit's day
    page.goto(f"{local_stack.state['console_url']}#/dispatch?date={booked[1]['start'][:10]}")
    expect(page.get_by_role("table", name="Dispatch board")).to_be_visible()
    block = page.locator(f'button[data-booking="{booked[1]["booking_id"]}"]')
    expect(block).to_be_visible()
    # And picks the second visit to put it on the first one's engineer and time
    block.click()
    page.get_by_label("Engineer").select_option(booked[0]["engineer_id"])
    page.get_by_label("Start (UTC)").fill(booked[0]["start"][:16])
    page.get_by_role("button", name="Assign").click()
    # Then the API refuses it (the no-overlap rule's 409 `slot_taken`, or a hard rule's 422),
    # and the page shows the refusal's reason
    problem = page.locator("#assign-problem .error")
    expect(problem).to_be_visible()
    move = {"ticket_id": second["ticket_id"], "engineer_id": booked[0]["engineer_id"]}
    status, refusal = manager.call("POST", "/dispatch/assign", move | {"start": booked[0]["start"]})
    assert status in (409, 422), refusal
    assert refusal["reason"] in (problem.text_content() or "")
    shot(page, "manager-dispatch")
    assert manager.get(f"/tickets/{second['ticket_id']}/bookings")[0]["start"] == booked[1]["start"]
    # And the follow-ups and parked messages pages answer from their routes
    page.get_by_role("link", name="Follow-ups").click()
    expect(page.get_by_role("heading", name="Follow-ups from low scores")).to_be_visible()
    expect(page.locator("main table, main .empty").first).to_be_visible()
    shot(page, "manager-followups")
    # And a fault from a device the registry does not know is parked; the manager replays it
    ghost = f"zz-console-{uuid.uuid4().hex[:8]}"
    fault = {"fault_id": f"console-{uuid.uuid4().hex[:12]}", "code": "EVSE-GROUNDFAULT"}
    payload = json.dumps(fault | {"occurred_at": datetime.now(UTC).isoformat(), "firmware": "1"})
    publish_as(
        local_stack.state,
        ghost,
        [{"topic": f"dt/aftercare/{ghost}/fault", "payload": payload, "qos": 1}],
    )
    wait_for(
        lambda: [r for r in manager.get("/parked?limit=500") if r.get("thing") == ghost],
        timeout=120,
        what="the unknown device's fault parked",
    )
    page.get_by_role("link", name="Parked messages").click()
    expect(page.get_by_role("heading", name="Parked messages")).to_be_visible()
    row = page.locator("tr", has_text=ghost)
    expect(row).to_contain_text("unknown_device")
    row.get_by_role("button", name="Replay").click()
    expect(page.locator("#replay-outcome")).to_contain_text("Sent back for processing (FaultQueue)")
    shot(page, "manager-parked")
    page.close()


def booked_with_one_engineer(manager: ApiUser, *tickets: str) -> list[dict[str, Any]]:
    """Each ticket's visit booked by the manager, all with an engineer the calendar offers to
    every one of them (each ticket's slots are asked for before any is booked)."""
    offered = {ticket: manager.get(f"/tickets/{ticket}/slots") for ticket in tickets}
    engineers = [{s["engineer_id"] for s in slots} for slots in offered.values()]
    common = sorted(set.intersection(*engineers))
    assert common, f"no engineer offered to all of {tickets}: {engineers}"
    booked = []
    for ticket, slots in offered.items():
        slot = next(s for s in slots if s["engineer_id"] == common[0])
        status, booking = manager.call(
            "POST", f"/tickets/{ticket}/booking", {"slot_id": slot["slot_id"]}
        )
        assert status == 201, booking
        booked.append(dict(booking))
    return booked
