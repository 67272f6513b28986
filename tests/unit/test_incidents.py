"""Fleet incidents: the policy, storm detection on the sharded windowed counter (moto, tables
from template.yaml), exactly one incident under concurrent intake workers, sampling and the
parts decision."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.incident_items import counter_key, join_update
from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.incidents import (
    ChildFacts,
    DiagnosticsSampling,
    IncidentPolicy,
    IncidentStatus,
    PartsWhileOpen,
    diagnose_child,
    load_incident_policy,
    parts_to_hold,
    sampled,
    shard_of,
    sliding_total,
    window_of,
    window_start,
)
from aftercare.domain.parts import StockLevel
from aftercare.domain.ports.incidents import CounterShard
from aftercare.domain.rules import load_catalog
from aftercare.domain.storm_groups import StormGroup, incident_for
from aftercare.domain.storms import StormWatch
from aftercare.models.parts import WantedPart
from moto import mock_aws
from pydantic import ValidationError

from tests.fakes.aws import use_fake_credentials
from tests.fakes.tables import create_template_tables
from tests.fakes.tickets import a_ticket

WINDOW = 10
# the start of a window, so the sliding estimate gives the previous window no weight unless
# a test says so
START = window_start(window_of(datetime(2026, 12, 6, 12, 0, tzinfo=UTC), WINDOW) + 1, WINDOW)


def policy(
    threshold: int = 6,
    shards: int = 2,
    grouped: tuple[str, ...] = (),
    per_firmware: bool = False,
    **while_open: Any,
) -> IncidentPolicy:
    data = load_incident_policy().model_dump()
    data["detection"] |= {
        "threshold_devices": threshold,
        "shards": shards,
        "group_by_category": grouped,
        "per_firmware": per_firmware,
    }
    data["while_open"] |= while_open
    return IncidentPolicy.model_validate(data)


class SerialClient:
    """A DynamoDB client whose calls are applied one at a time, as DynamoDB applies the
    conditional writes of one item (moto's in-process backend is not thread-safe)."""

    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._ddb, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    use_fake_credentials(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_template_tables(ddb, ["IncidentsTable", "TicketsTable"])
        yield {
            "ddb": SerialClient(ddb),
            "incidents": "aftercare-incidents-test",
            "tickets": "aftercare-tickets-test",
        }


def watch_on(tables: dict[str, Any], rules: IncidentPolicy) -> StormWatch:
    store = DynamoIncidentStore(
        incidents_table=tables["incidents"],
        tickets_table=tables["tickets"],
        policy=rules,
        ddb=tables["ddb"],
    )
    return StormWatch(store=store, policy=rules, catalog=load_catalog())


def opened(
    tables: dict[str, Any],
    n: int,
    at: datetime,
    model: str = "RT-X",
    start: int = 0,
    code: str = "FW-CRASHLOOP",
):
    """`n` tickets of `code` on distinct devices of `model`, stored as intake stores them."""
    tickets = []
    entry = load_catalog().codes[code]
    for i in range(start, start + n):
        ticket = a_ticket(
            at,
            ticket_id=f"T-{model}-{i:03d}",
            thing=f"{model.lower()}-{i:04d}",
            customer_id=f"c-{i}",
            model=model,
            fault_code=code,
            category=entry.category,
            firmware=f"2.{i % 2}.0",
            region="eu-west" if i % 3 else "ap-east",
        )
        tables["ddb"].put_item(TableName=tables["tickets"], Item=to_item(ticket_item(ticket)))
        tickets.append(ticket)
    return tickets


def incidents(tables: dict[str, Any]) -> list[Any]:
    return watch_on(tables, policy()).store.list_incidents()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- policy


def test_the_shipped_policy_is_valid_and_strict():
    # Given the shipped incidents.yaml
    shipped = load_incident_policy()
    # Then it validates, and a typo in it would be an error, not a default
    assert shipped.detection.threshold_devices >= 2 and shipped.detection.shards >= 1
    data = shipped.model_dump()
    data["detection"]["treshold"] = 5
    with pytest.raises(ValidationError):
        IncidentPolicy.model_validate(data)


def test_a_deployment_threshold_overrides_the_policy_and_zero_keeps_it():
    # Given the shipped policy
    shipped = load_incident_policy()
    # When a deployment sets its own threshold (template parameter IncidentThresholdDevices)
    raised = shipped.with_threshold(10_000_000)
    # Then only the threshold changes (and the shard precheck with it); 0 keeps the policy's
    assert raised.detection.threshold_devices == 10_000_000
    assert raised.detection.shards == shipped.detection.shards
    assert raised.detection.precheck > shipped.detection.precheck
    assert raised.while_open == shipped.while_open and raised.version == shipped.version
    assert shipped.with_threshold(0) is shipped
    # ...and a threshold of one device is refused like a typo in incidents.yaml
    with pytest.raises(ValidationError):
        shipped.with_threshold(1)


def test_a_threshold_out_of_reach_opens_no_incident_for_a_storm(tables):
    # Given the bench's deployment setting: a threshold no load reaches
    watch = watch_on(tables, policy(threshold=6).with_threshold(10_000))
    # When 20 devices of one model open a ticket for the same code
    results = [watch.after_open(t, START) for t in opened(tables, 20, START)]
    # Then every ticket stays on the per-device path
    assert results == [None] * 20 and incidents(tables) == []


# --------------------------------------------------------------------------- detection


def test_below_the_threshold_no_incident_opens(tables):
    # Given a policy of 6 devices in 10 minutes
    watch = watch_on(tables, policy(threshold=6))
    # When 5 devices of one model open a ticket for the same code
    results = [watch.after_open(t, START) for t in opened(tables, 5, START)]
    # Then no incident opens
    assert results == [None] * 5 and incidents(tables) == []


def test_crossing_the_threshold_opens_one_incident_and_links_the_earlier_tickets(tables):
    # Given 5 tickets counted in the window
    watch = watch_on(tables, policy(threshold=6))
    tickets = opened(tables, 7, START + timedelta(minutes=1))
    for ticket in tickets[:5]:
        assert watch.after_open(ticket, START + timedelta(minutes=1)) is None
    # When the sixth and seventh device report
    sixth = watch.after_open(tickets[5], START + timedelta(minutes=2))
    seventh = watch.after_open(tickets[6], START + timedelta(minutes=2))
    # Then one incident opened at the sixth; the seventh (counted before intake saw the
    # pointer) joins the same one; every ticket of the window is its child
    (incident,) = incidents(tables)
    assert sixth == seventh == incident.incident_id
    assert incident.fault_code == "FW-CRASHLOOP" and incident.model == "RT-X"
    store = watch.store
    links = store.children(incident.incident_id, 2)  # type: ignore[attr-defined]
    assert sorted(link.ticket_id for link in links) == sorted(t.ticket_id for t in tickets)
    stats = store.incident_stats(incident.incident_id, 2)  # type: ignore[attr-defined]
    assert stats.children == 7 and stats.linked_before == 7
    assert stats.firmware_versions == ["2.0.0", "2.1.0"]
    assert stats.regions == ["ap-east", "eu-west"]


def test_another_model_with_the_same_code_is_counted_apart(tables):
    # Given 5 RT-X devices and 5 EV-CH devices with the same code in one window
    watch = watch_on(tables, policy(threshold=6))
    for ticket in opened(tables, 5, START) + opened(tables, 5, START, model="EV-CH"):
        watch.after_open(ticket, START)
    # Then neither model crossed 6
    assert incidents(tables) == []


def test_the_window_rolls_over(tables):
    # Given 5 devices counted early in one window
    watch = watch_on(tables, policy(threshold=6))
    for ticket in opened(tables, 5, START):
        watch.after_open(ticket, START)
    # When, at the very end of the next window (the first's weight is nearly gone), 2 more
    late = START + timedelta(minutes=2 * WINDOW) - timedelta(seconds=1)
    for ticket in opened(tables, 2, late, start=5):
        watch.after_open(ticket, late)
    # Then the sliding total stays under the threshold and no incident opens
    assert incidents(tables) == []


def test_a_storm_across_the_window_boundary_is_seen(tables):
    # Given 4 devices at the end of one window
    watch = watch_on(tables, policy(threshold=6))
    end = START + timedelta(minutes=WINDOW) - timedelta(seconds=5)
    for ticket in opened(tables, 4, end):
        watch.after_open(ticket, end)
    # When 3 more report just after the boundary (the previous window still weighs ~1): with 2
    # shards one of them reaches the precheck (2) by the third, and its writer sums them
    after = START + timedelta(minutes=WINDOW, seconds=5)
    results = [watch.after_open(t, after) for t in opened(tables, 3, after, start=4)]
    # Then the incident opens, and the tickets of both windows are its children
    (incident,) = incidents(tables)
    assert incident.incident_id in results
    assert len(watch.store.children(incident.incident_id, 2)) == 7  # type: ignore[attr-defined]


def test_the_shards_are_summed_on_read(tables):
    # Given tickets of one window counted on different shards
    rules = policy(threshold=100, shards=4)
    watch = watch_on(tables, rules)
    tickets = opened(tables, 12, START)
    for ticket in tickets:
        watch.after_open(ticket, START)
    window = window_of(START, WINDOW)
    # Then no shard holds them all, and the tally is their sum
    shards = {shard_of(t.thing, 4) for t in tickets}
    assert len(shards) > 1
    tally = watch.store.storm_tally("RT-X", "code=FW-CRASHLOOP", [window, window - 1], 4)
    assert tally.of(window) == 12 and tally.of(window - 1) == 0
    assert sorted(tally.ticket_ids) == sorted(t.ticket_id for t in tickets)
    item = tables["ddb"].get_item(
        TableName=tables["incidents"],
        Key=to_item(
            counter_key(
                CounterShard(model="RT-X", group="code=FW-CRASHLOOP", window=window, shard=0)
            )
        ),
    )
    assert int(item.get("Item", {}).get("n", {"N": "0"})["N"]) < 12


def test_concurrent_intake_workers_open_exactly_one_incident(tables):
    # Given 5 tickets already counted (one under the threshold of 6)
    rules = policy(threshold=6)
    watch = watch_on(tables, rules)
    for ticket in opened(tables, 5, START):
        watch.after_open(ticket, START)
    # When 8 workers each open one more ticket at the same moment
    racers = opened(tables, 8, START, start=5)
    barrier = threading.Barrier(len(racers))
    results: list[str | None] = []

    def work(ticket: Any) -> None:
        barrier.wait()
        results.append(watch_on(tables, rules).after_open(ticket, START))

    threads = [threading.Thread(target=work, args=(t,)) for t in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one incident exists, every worker names it, and all 13 are its children once
    (incident,) = incidents(tables)
    assert set(results) == {incident.incident_id}
    links = watch.store.children(incident.incident_id, 2)  # type: ignore[attr-defined]
    assert len(links) == len({link.ticket_id for link in links}) == 13
    stats = watch.store.incident_stats(incident.incident_id, 2)  # type: ignore[attr-defined]
    assert stats.children == 13


def test_a_resolved_storm_does_not_reopen_at_the_next_report(tables):
    # Given an incident opened by 6 devices, then resolved (pointer removed, counters zeroed)
    rules = policy(threshold=6)
    watch = watch_on(tables, rules)
    for ticket in opened(tables, 6, START):
        watch.after_open(ticket, START)
    store = watch.store
    (incident,) = incidents(tables)
    done = incident.model_copy(update={"status": IncidentStatus.RESOLVED})
    store.set_status(done, IncidentStatus.OPEN)  # type: ignore[attr-defined]
    window = window_of(START, WINDOW)
    store.reset_storm("RT-X", incident.storm.key, [window, window - 1], 2)  # type: ignore[attr-defined]
    assert store.active_incident("RT-X", "FW-CRASHLOOP") is None  # type: ignore[attr-defined]
    # When two more devices report in the same window
    late = [watch.after_open(t, START) for t in opened(tables, 2, START, start=6)]
    # Then they are ordinary tickets: no second incident
    assert late == [None, None] and len(incidents(tables)) == 1


# --------------------------------------------------------------------------- grouped categories


def test_two_codes_of_a_grouped_category_open_one_incident(tables):
    # Given a policy that groups the power category (threshold 6)
    watch = watch_on(tables, policy(threshold=6, grouped=("power",)))
    # When 3 AC-HP devices report over-voltage and 3 others under-voltage in one window
    over = opened(tables, 3, START, model="AC-HP", code="PSU-OVERVOLT")
    under = opened(tables, 3, START, model="AC-HP", start=3, code="PSU-UNDERVOLT")
    results = [watch.after_open(t, START) for t in over + under]
    # Then one power incident opened, covering both codes, with all six tickets its children
    (incident,) = incidents(tables)
    assert results[-1] == incident.incident_id
    assert incident.category == "power" and incident.model == "AC-HP"
    assert incident.codes == ["PSU-OVERVOLT", "PSU-UNDERVOLT"]
    store = watch.store
    links = store.children(incident.incident_id, 2)  # type: ignore[attr-defined]
    assert sorted(link.ticket_id for link in links) == sorted(t.ticket_id for t in over + under)
    # and a later report of either code finds it through its own code's pointer
    for code in ("PSU-OVERVOLT", "PSU-UNDERVOLT"):
        assert store.active_incident("AC-HP", code) == incident.incident_id  # type: ignore[attr-defined]


def test_an_excluded_code_of_a_grouped_category_is_not_covered(tables):
    # Given power grouped, but PSU-UNDERVOLT excluded from incidents
    rules = policy(threshold=6, grouped=("power",))
    detection = rules.detection.model_copy(update={"exclude_codes": ("PSU-UNDERVOLT",)})
    watch = watch_on(tables, rules.model_copy(update={"detection": detection}))
    # When 6 AC-HP devices report over-voltage, and 3 under-voltage
    for ticket in opened(tables, 6, START, model="AC-HP", code="PSU-OVERVOLT"):
        watch.after_open(ticket, START)
    under = opened(tables, 3, START, model="AC-HP", start=6, code="PSU-UNDERVOLT")
    assert [watch.after_open(t, START) for t in under] == [None] * 3
    # Then the incident covers over-voltage only: an under-voltage report joins nothing
    (incident,) = incidents(tables)
    assert incident.codes == ["PSU-OVERVOLT"]
    assert watch.store.active_incident("AC-HP", "PSU-UNDERVOLT") is None  # type: ignore[attr-defined]


def test_codes_of_an_ungrouped_category_stay_apart(tables):
    # Given a policy that groups power only
    watch = watch_on(tables, policy(threshold=6, grouped=("power",)))
    # When 3 AC-HP devices report a stalled fan and 3 others a high temperature (both thermal)
    fans = opened(tables, 3, START, model="AC-HP", code="FAN-STALL")
    heat = opened(tables, 3, START, model="AC-HP", start=3, code="TEMP-HIGH")
    results = [watch.after_open(t, START) for t in fans + heat]
    # Then each code counted apart: 3 and 3, no incident
    assert results == [None] * 6 and incidents(tables) == []
    window = window_of(START, WINDOW)
    tally = watch.store.storm_tally("AC-HP", "code=FAN-STALL", [window], 2)
    assert tally.of(window) == 3


def test_code_and_category_counters_never_share_a_key():
    # Given a code and a category spelled alike
    code = StormGroup(kind="code", name="power")
    category = StormGroup(kind="category", name="power")
    # Then their counter shards are different items
    keys = [
        counter_key(CounterShard(model="AC-HP", group=g.key, window=1, shard=0))
        for g in (code, category)
    ]
    assert keys[0] != keys[1]
    grouped = policy(grouped=("power",)).detection
    assert grouped.group_of("PSU-OVERVOLT", "power", "1.0") == category
    # and a firmware split keeps a separate key per version, whatever its characters
    split = policy(grouped=("power",), per_firmware=True).detection
    one, other = (split.group_of("PSU-OVERVOLT", "power", fw).key for fw in ("1.0#a", "1.0"))
    assert one != other and "#" not in one


def test_the_reset_after_resolve_clears_the_category_counter(tables):
    # Given a power incident opened by over- and under-voltage reports, then resolved
    watch = watch_on(tables, policy(threshold=6, grouped=("power",)))
    for ticket in opened(tables, 3, START, model="AC-HP", code="PSU-OVERVOLT") + opened(
        tables, 3, START, model="AC-HP", start=3, code="PSU-UNDERVOLT"
    ):
        watch.after_open(ticket, START)
    store = watch.store
    (incident,) = incidents(tables)
    done = incident.model_copy(update={"status": IncidentStatus.RESOLVED})
    store.set_status(done, IncidentStatus.OPEN)  # type: ignore[attr-defined]
    window = window_of(START, WINDOW)
    store.reset_storm("AC-HP", incident.storm.key, [window, window - 1], 2)  # type: ignore[attr-defined]
    # Then both codes' pointers are gone and the category's counter reads zero
    assert store.active_incident("AC-HP", "PSU-OVERVOLT") is None  # type: ignore[attr-defined]
    assert store.active_incident("AC-HP", "PSU-UNDERVOLT") is None  # type: ignore[attr-defined]
    assert store.storm_tally("AC-HP", "category=power", [window], 2).of(window) == 0
    # When two more devices report under-voltage in the same window
    late = opened(tables, 2, START, model="AC-HP", start=6, code="PSU-UNDERVOLT")
    # Then they are ordinary tickets: no second incident
    assert [watch.after_open(t, START) for t in late] == [None, None]
    assert len(incidents(tables)) == 1


def test_split_per_firmware_each_version_is_its_own_storm(tables):
    # Given a policy that splits storms per firmware (threshold 6)
    watch = watch_on(tables, policy(threshold=6, per_firmware=True))
    # When 6 RT-X devices report the same code, 3 on firmware 2.0.0 and 3 on 2.1.0
    results = [watch.after_open(t, START) for t in opened(tables, 6, START)]
    # Then neither version crossed 6: no incident
    assert results == [None] * 6 and incidents(tables) == []
    # When 3 more on 2.0.0 report (even numbers: 2.0.0)
    more = [t for t in opened(tables, 6, START, start=6) if t.firmware == "2.0.0"]
    results = [watch.after_open(t, START) for t in more]
    # Then the 2.0.0 storm opened an incident naming its firmware, linking only its tickets
    (incident,) = incidents(tables)
    assert incident.firmware == "2.0.0" and results[-1] == incident.incident_id
    store = watch.store
    links = store.children(incident.incident_id, 2)  # type: ignore[attr-defined]
    assert {link.firmware for link in links} == {"2.0.0"} and len(links) == 6
    # and its pointer is the model's on that firmware only: 2.1.0 devices stay on their own
    assert store.active_incident("RT-X", "FW-CRASHLOOP", "2.0.0") == incident.incident_id  # type: ignore[attr-defined]
    assert store.active_incident("RT-X", "FW-CRASHLOOP") is None  # type: ignore[attr-defined]
    active = {incident.pointer: incident.incident_id}
    assert incident_for(active, "RT-X", "2.0.0") == incident.incident_id
    assert incident_for(active, "RT-X", "2.1.0") is None
    # and a model-wide incident is found whatever the device's firmware
    assert incident_for({"RT-X": "INC-1"}, "RT-X", "9.9") == "INC-1"


def test_grouping_is_checked_against_the_catalog_and_itself(tables):
    # A category the catalog lacks fails the start-up (a typo is not a silent per-code storm)
    with pytest.raises(ValueError, match="powr"):
        watch_on(tables, policy(grouped=("powr",)))
    # ...and so do a category listed twice and the unclassified bucket
    with pytest.raises(ValidationError):
        policy(grouped=("power", "power"))
    with pytest.raises(ValidationError):
        policy(grouped=("unclassified",))
    # and the shipped policy's categories all exist
    shipped = load_incident_policy()
    StormWatch(store=None, policy=shipped, catalog=load_catalog())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- while open


def test_children_are_sampled_first_k_then_one_in_n():
    # Given first 4 then 1 in 5, over 2 shards (2 first per shard)
    sampling = DiagnosticsSampling(first=4, then_one_in=5)
    # Then per shard: children 1, 2 diagnosed; then 7, 12, 17 ...
    chosen = [n for n in range(1, 23) if diagnose_child(n, sampling, shards=2)]
    assert chosen == [1, 2, 7, 12, 17, 22]
    # and the count read back agrees with the decisions
    assert all(sampled(n, sampling, 2) == len([c for c in chosen if c <= n]) for n in range(23))


def test_a_thousand_children_are_diagnosed_at_most_first_plus_one_in_n():
    sampling = DiagnosticsSampling(first=8, then_one_in=10)
    per_shard = 125  # 1,000 children over 8 shards
    total = 8 * sampled(per_shard, sampling, 8)
    assert total <= 8 + 1000 // 10


def test_parts_are_held_only_while_stock_covers_them_with_some_to_spare():
    level = StockLevel(sku="FAN-80MM", warehouse="WH-1", on_hand=5, held=2, reorder_point=1)
    want = [WantedPart(sku="FAN-80MM", qty=1)]
    within = PartsWhileOpen(reserve="within_stock", keep_free=2)
    # Given 3 available and 2 to keep free: one more can be held
    assert parts_to_hold(want, {("FAN-80MM", "WH-1"): level}, ["WH-1"], within) == (want, {})
    # When only 2 are available, the child holds none; the demand goes to the incident
    tight = level.model_copy(update={"held": 3})
    assert parts_to_hold(want, {("FAN-80MM", "WH-1"): tight}, ["WH-1"], within) == (
        [],
        {"FAN-80MM": 1},
    )
    # and with `never`, nothing is held at all
    never = PartsWhileOpen(reserve="never")
    assert parts_to_hold(want, {("FAN-80MM", "WH-1"): level}, ["WH-1"], never)[0] == []


def test_a_child_join_adds_its_trend_minute_and_backorder_demand():
    facts = ChildFacts(
        incident_id="INC-1",
        ticket_id="T-1",
        thing="rt-x-0001",
        customer_id="c-1",
        region="eu-west",
        firmware="2.0.0",
        seen_at=datetime(2026, 12, 6, 12, 34, 56, tzinfo=UTC),
        shard=3,
        avoided={"FAN-80MM": 2},
    )
    request = join_update("tbl", facts)
    assert request["Key"] == {"pk": {"S": "INCSTAT#INC-1#3"}, "sk": {"S": "STATS"}}
    assert request["ExpressionAttributeNames"]["#trend"] == "t_202612061234"
    assert request["ExpressionAttributeNames"]["#bo0"] == "bo_FAN-80MM"
    assert request["ExpressionAttributeValues"][":bo0"] == {"N": "2"}
    assert "reservations_avoided :avoided" in request["UpdateExpression"]


def test_the_sliding_total_weights_the_previous_window():
    start = window_start(100, WINDOW)
    assert sliding_total(3, 10, start, WINDOW) == 13
    assert sliding_total(3, 10, start + timedelta(minutes=5), WINDOW) == 8


def test_the_cli_shows_the_codes_an_incident_covers():
    from infra.cli_incidents import summary

    # Given a category incident's view, and one recorded before incidents covered codes
    grouped = {
        "incident": {
            "incident_id": "INC-1",
            "fault_code": "PSU-OVERVOLT",
            "model": "AC-HP",
            "status": "open",
            "category": "power",
            "codes": ["PSU-OVERVOLT", "PSU-UNDERVOLT"],
        },
        "stats": {},
    }
    older = {"incident": {"incident_id": "INC-0", "fault_code": "FAN-STALL"}, "stats": {}}
    # Then `incidents show` prints the category and every covered code (or the one code)
    shown = summary(grouped)
    assert shown["category"] == "power" and shown["codes"] == "PSU-OVERVOLT, PSU-UNDERVOLT"
    assert summary(older)["codes"] == "FAN-STALL"
