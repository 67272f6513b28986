"""The scale model: minute by minute, a fleet's faults, a storm, telemetry, diagnostics and
notifications through today's topology (or the fleet-incident design), as fluid flows limited
by the template's concurrency settings and the measured Lambda time per fault.

Models, stated:
- Lambda concurrency = records/s x measured Lambda seconds per record (Little's law; batching
  splits that time into invocations, it does not change it), capped by the event source's
  MaximumConcurrency, the function's reserved concurrency and the account's concurrency
  (SQS), or by stream shards x ParallelizationFactor (DynamoDB streams); the rest waits.
- Transaction conflicts on one item: an item takes part in one transaction at a time and a
  transaction that meets another on it is cancelled (TransactionConflict) - a loss system
  with one server, so P(conflict) = rho / (1 + rho), rho = attempts/s x hold time (Erlang B
  with one server, any hold-time distribution). The storm part's stock is split over
  `stock_shards` shard items per warehouse (parts.yaml) and a reservation writes the shard its
  ticket id hashes to, so each shard sees attempts/s / shards. Intake re-reads and retries a
  conflicted transaction in the same invocation (MAX_LOCK_RETRIES attempts, each a fresh
  attempt on the item: retries raise the attempt rate, solved as a fixed point); a record whose
  attempts all conflict is a batch item failure: back after the visibility timeout,
  dead-lettered on its maxReceiveCount-th receive.
- The windowed storm counter (`counter.py`): every new ticket outside an open incident updates
  one counter shard (measured), and the storm's tickets read every shard of two windows
  (derived); today's design opens no incident, so its counter counts the whole storm.
- Every rate is the minute's average: bursts within a minute are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aftercare.domain.intake import MAX_LOCK_RETRIES

from infra.bench.cost import NOTIFIER
from infra.scale.counter import CounterFlow
from infra.scale.flow import (
    MINUTE_S,
    Cohort,
    QueueMinute,
    RetryQueue,
    Stage,
    capacity_per_minute,
)
from infra.scale.limits import Limits
from infra.scale.measured import Measured
from infra.scale.scenario import INCIDENT, Scenario
from infra.scale.settings import TemplateSettings

INTAKE = "FaultIntakeFunction"
AUTODIAG = "AutoDiagnoseFunction"
RESULTS = "DiagnosticsResultFunction"
DISPATCHER = "DispatcherFunction"
STREAM_CONSUMERS = (AUTODIAG, NOTIFIER, DISPATCHER)
TRANSACTIONAL_WRITE = 2  # a transactional write costs twice the units of a plain one
CHANNEL_LIMITS = {"email": "ses_send_rate", "sms": "sns_sms_rate", "push": "sns_publish_rate"}


@dataclass(frozen=True)
class Inputs:
    settings: TemplateSettings
    measured: Measured
    limits: Limits


def conflict_probability(attempts_per_s: float, hold_s: float) -> float:
    """P(an attempt meets a transaction in progress on the item): Erlang B, one server."""
    rho = attempts_per_s * hold_s
    return rho / (1 + rho)


def record_conflict(
    records_per_s: float, hold_s: float, attempts: int = MAX_LOCK_RETRIES
) -> tuple[float, float]:
    """(P(an attempt conflicts), P(all of a record's `attempts` conflict)) on one item taking
    `records_per_s` records, each retried at once after a conflict: attempts/s = records/s x
    (1 + p + ... + p^(attempts-1)), p = conflict_probability(attempts/s), a fixed point."""
    p = conflict_probability(records_per_s, hold_s)
    for _ in range(200):
        tries = sum(p**i for i in range(attempts))
        nxt = conflict_probability(records_per_s * tries, hold_s)
        if abs(nxt - p) < 1e-12:
            break
        p = nxt
    return p, p**attempts


@dataclass
class Result:
    scenario: Scenario
    rows: list[dict[str, float]]
    totals: dict[str, float]
    detected_minute: int | None = None

    def peak(self, key: str) -> float:
        return max((row[key] for row in self.rows), default=0.0)


@dataclass
class Simulation:
    scenario: Scenario
    inputs: Inputs
    fault_queue: RetryQueue = field(init=False)
    streams: dict[str, Stage] = field(default_factory=dict)
    results_stage: Stage = field(default_factory=Stage)
    paced: Stage = field(default_factory=Stage)
    totals: dict[str, float] = field(default_factory=dict)
    storm_seen: float = 0.0
    diagnosed_children: float = 0.0
    stock_left: float = 0.0
    detected_minute: int | None = None
    counter: CounterFlow = field(init=False)

    def __post_init__(self) -> None:
        self.counter = CounterFlow(
            self.scenario.counter, self.inputs.measured.storm_counter_wcu_per_fault
        )
        queue = self.inputs.settings.queues["FaultQueue"]
        self.fault_queue = RetryQueue(queue.visibility_timeout_s, queue.max_receive_count or 1)
        self.streams = {name: Stage() for name in STREAM_CONSUMERS}
        self.stock_left = float(self.scenario.policy.stock_units)

    # ------------------------------------------------------------------ settings
    def _sqs_cap(self, function: str, queue: str) -> float:
        source = self.inputs.settings.source(function, queue)
        reserved = self.inputs.settings.functions[function].reserved_concurrency
        account = self.inputs.limits["lambda_account_concurrency"].value
        caps = [c for c in (source.max_concurrency, reserved, account) if c]
        return float(min(caps))

    def _shards(self, tickets_per_s: float) -> int:
        table_wru = tickets_per_s * self.inputs.measured.ticket_table_wru_per_fault
        least = int(self.inputs.limits.assumptions["stream_shards_minimum"])
        return max(least, math.ceil(table_wru / 1000))

    def _in_flight(self, function: str, queue: str, rate: float) -> float:
        """Messages received and not yet deleted at `rate` records/s (Little's law): each
        waits about half the batching window, then its batch's records one after another."""
        source = self.inputs.settings.source(function, queue)
        batch = min(source.batch_size, max(1.0, rate * source.window_s))
        return rate * (source.window_s / 2 + batch * self.inputs.measured.busy(function))

    @property
    def _incident_open(self) -> bool:
        return self.scenario.design == INCIDENT and self.detected_minute is not None

    # ------------------------------------------------------------------ one minute
    def minute(self, m: int) -> dict[str, float]:
        sc, measured = self.scenario, self.inputs.measured
        storm = sc.storm_reports(m)
        self._detect(m, storm)
        base = sc.baseline_faults_per_s * MINUTE_S
        hold_s = self.inputs.limits.assumptions["transaction_hold_ms"] / 1000
        # the incident design as modelled: stock writes through the item's FIFO message group
        # always, not only once an incident is open
        serialised = sc.design == INCIDENT
        keys = max(1, sc.storm_warehouses) * max(1, sc.stock_shards)  # stock shard items

        def attempt_conflict(per_s: float) -> float:
            return 0.0 if serialised else record_conflict(per_s / keys, hold_s)[0]

        def hot_failure(per_s: float) -> float:
            return 0.0 if serialised else record_conflict(per_s / keys, hold_s)[1]

        intake_cap = self._sqs_cap(INTAKE, "FaultQueue")
        q = self.fault_queue.step(
            m,
            [Cohort(m, 0, base, False), Cohort(m, 0, storm, True)],
            capacity_per_minute(intake_cap, measured.busy(INTAKE)),
            hot_failure,
            lambda rate: self._in_flight(INTAKE, "FaultQueue", rate),
        )
        tickets = q.succeeded
        hot_rate = q.processed_hot / MINUTE_S
        row: dict[str, float] = {
            "minute": m,
            "faults_per_s": (base + storm) / MINUTE_S,
            # concurrency needed (the cap shows as a growing backlog)
            "intake_conc": q.received / MINUTE_S * measured.busy(INTAKE),
            "faultq_backlog": q.backlog,
            "faultq_in_flight": q.in_flight,
            "faultq_oldest_s": q.oldest_age_s,
            "conflict_p": attempt_conflict(hot_rate) if hot_rate else 0.0,
            "record_conflict_p": hot_failure(hot_rate) if hot_rate else 0.0,
            "dead_lettered": q.dead_lettered,
        }
        row |= self._stock(q.succeeded_hot, q.processed_hot, keys, row["conflict_p"])
        storm_counted = 0.0 if self._incident_open else q.succeeded_hot
        row |= self.counter.minute(m, storm_counted)
        # every attempt's batch read includes the code's ACTIVE pointer: one key for the storm
        tries = sum(row["conflict_p"] ** i for i in range(MAX_LOCK_RETRIES))
        pointer_rru = measured.incident_pointer_rru_per_fault
        row["pointer_rcu"] = q.processed_hot * tries / MINUTE_S * pointer_rru
        # the counter's updates: the storm's counted tickets and every baseline ticket
        row["counter_updates"] = tickets - q.succeeded_hot + storm_counted
        diagnostics = self._diagnostics(row, tickets, q.succeeded_hot)
        row |= self._notifications(tickets, q.succeeded_hot)
        row |= self._iot(base + storm, diagnostics)
        row |= self._tickets_table(tickets, diagnostics)
        row["lambda_conc_total"] = sum(v for k, v in row.items() if k.endswith("_conc"))
        self._count(row, tickets, q, diagnostics)
        return row

    def _detect(self, m: int, storm: float) -> None:
        """The incident opens in the minute the storm crosses the threshold (at 100 of 5,000
        reports in that minute: its first ~threshold reports are treated as children too)."""
        self.storm_seen += storm
        sc = self.scenario
        undetected = sc.design == INCIDENT and self.detected_minute is None
        if undetected and self.storm_seen >= sc.policy.detect_devices:
            self.detected_minute = m

    def _stock(self, held: float, records: float, keys: int, p: float) -> dict[str, float]:
        """One stock shard item (its own partition key) of the storm part: every storm report
        writes one shard (a hold, or the backorder count once it is empty) inside the ticket's
        transaction; every attempt reads all shards of its warehouse (one BatchGetItem,
        consistent: 1 RCU an item), so each shard key is read by every attempt."""
        shards = max(1, self.scenario.stock_shards)
        per_key = held / keys / MINUTE_S
        if not self._incident_open:
            attempts = records * sum(p**i for i in range(MAX_LOCK_RETRIES))
            wcu = per_key * TRANSACTIONAL_WRITE
            return {
                "stock_wcu": wcu,
                "stock_key_wcu_per_min": wcu * MINUTE_S,
                "stock_rcu": attempts / (keys / shards) / MINUTE_S,
            }
        holds = min(held, self.stock_left)
        self.stock_left -= holds
        aggregated = 1.0 if held > holds else 0.0  # one backorder update a minute
        wcu = (holds / keys + aggregated) / MINUTE_S
        return {"stock_wcu": wcu, "stock_key_wcu_per_min": wcu * MINUTE_S, "stock_rcu": 0.0}

    def _diagnostics(self, row: dict[str, float], tickets: float, storm_tickets: float) -> float:
        """Diagnostic round trips started this minute (AutoDiagnose reads the tickets stream)."""
        sc, measured = self.scenario, self.inputs.measured
        shards = self._shards(tickets / MINUTE_S)
        wanted = tickets
        if self._incident_open:
            sampled = min(
                storm_tickets * sc.policy.diagnostic_sample,
                max(0.0, sc.policy.diagnostic_cap - self.diagnosed_children),
            )
            self.diagnosed_children += sampled
            wanted = tickets - storm_tickets + sampled
        stream_ages, done_by = [], {}
        for name, stage in self.streams.items():
            busy = measured.busy(name)
            load = wanted if name == AUTODIAG else tickets
            parallel = self.inputs.settings.source(name, "TicketsTable").parallelization
            cap = capacity_per_minute(shards * parallel, busy)
            done_by[name], age = stage.step(load, cap)
            short = name.removesuffix("Function").lower()
            row[f"{short}_conc"] = load / MINUTE_S * busy  # needed to keep up
            row[f"{short}_stream_use"] = row[f"{short}_conc"] / (shards * parallel)
            stream_ages.append(age)
        started = done_by[AUTODIAG]
        results_cap = capacity_per_minute(
            self._sqs_cap(RESULTS, "DiagnosticsResultQueue"), measured.busy(RESULTS)
        )
        settled, age = self.results_stage.step(started, results_cap)
        row["diagresult_conc"] = started / MINUTE_S * measured.busy(RESULTS)
        row["diagq_backlog"] = self.results_stage.backlog
        row["diagq_in_flight"] = self._in_flight(
            RESULTS, "DiagnosticsResultQueue", settled / MINUTE_S
        )
        row["diagq_oldest_s"] = age
        row["stream_age_s"] = max(stream_ages)
        row["stream_use"] = max(v for k, v in row.items() if k.endswith("_stream_use"))
        row["diag_pending_wcu"] = (started + settled) / MINUTE_S
        return started

    def _notifications(self, tickets: float, storm_tickets: float) -> dict[str, float]:
        sc = self.scenario
        largest = storm_tickets * sc.largest_customer_share
        if self._incident_open:
            customers = storm_tickets - largest
            paced, _ = self.paced.step(customers, self._known_issue_pace() * MINUTE_S)
            messages = tickets - storm_tickets + paced
            bundle = 0.0  # the fleet customer: one known-issue message, once
            # each child: a plain ADD on one of the incident's statistics shards
            counter = storm_tickets / MINUTE_S / sc.counter.shards
        else:
            # one message per ticket; the fleet customer's tickets go into its digest: one
            # message per DigestWindowSeconds, but every ticket updates its bundle item
            window = float(self.inputs.settings.parameters["DigestWindowSeconds"])
            messages = tickets - largest + min(largest, MINUTE_S / window if largest else 0.0)
            bundle = largest / MINUTE_S
            counter = 0.0
        per_s = messages / MINUTE_S
        item_kb = self.inputs.limits.assumptions["item_kb"]
        row = {f"{ch}_per_s": per_s * share for ch, share in sc.channel_mix.items()}
        row["bundle_wcu"] = bundle * item_kb
        row["incident_counter_wcu"] = counter * item_kb
        row["messages"] = messages
        row["messages_waiting"] = self.paced.backlog
        return row

    def _known_issue_pace(self) -> float:
        """Messages/s: the policy's pace, or less so that no channel exceeds its quota."""
        sc, limits = self.scenario, self.inputs.limits
        pace = sc.policy.known_issue_per_s
        for channel, share in sc.channel_mix.items():
            if share > 0:
                quota = limits[CHANNEL_LIMITS[channel]].value * sc.policy.quota_headroom
                pace = min(pace, quota / share)
        return pace

    def _iot(self, faults: float, diagnostics: float) -> dict[str, float]:
        telemetry = self.scenario.telemetry_per_s
        per_s = faults / MINUTE_S
        diag = diagnostics / MINUTE_S
        return {
            "iot_in_per_s": per_s + telemetry + diag,  # faults, telemetry, diagnostics answers
            "iot_out_per_s": diag,  # diagnostics requests
            # every telemetry message matches TelemetryTopicRule (one SQS action), as faults do
            "rule_evals_per_s": per_s + telemetry + diag,
            "rule_actions_per_s": per_s + telemetry + diag,
        }

    def _tickets_table(self, tickets: float, diagnostics: float) -> dict[str, float]:
        item_kb = self.inputs.limits.assumptions["item_kb"]
        per_s = tickets / MINUTE_S
        per_ticket = self.inputs.measured.ticket_table_wru_per_fault
        return {
            "tickets_table_wru": per_s * per_ticket,
            # one ticket's own keys (TICKET#, OPEN#, FAULT#): at most all its measured writes
            # within one second
            "ticket_key_wcu": per_ticket if tickets > 0 else 0.0,
            # by_status GSI, key "open": the ticket's insert, then its move to diagnosing
            "open_gsi_wcu": (per_s + diagnostics / MINUTE_S) * item_kb,
        }

    def _count(self, row: dict[str, float], tickets: float, q: QueueMinute, diag: float) -> None:
        t = self.totals
        add = {
            "tickets": tickets,
            "diagnostics": diag,
            "retries": q.failed - q.dead_lettered,
            "dead_lettered": row["dead_lettered"],
            "telemetry": self.scenario.telemetry_per_s * MINUTE_S,
            "storm_counter_updates": row["counter_updates"],
            "storm_counter_read_units": row["counter_reads_rru"],
            "storm_counter_extra_write_units": row["counter_extra_wru"],
        }
        for channel in self.scenario.channel_mix:
            add[f"{channel}_messages"] = row[f"{channel}_per_s"] * MINUTE_S
        for key, value in add.items():
            t[key] = t.get(key, 0.0) + value


def simulate(scenario: Scenario, inputs: Inputs) -> Result:
    sim = Simulation(scenario, inputs)
    rows = [sim.minute(m) for m in range(scenario.minutes)]
    sim.totals["messages_waiting_at_end"] = sim.paced.backlog
    return Result(scenario, rows, sim.totals, sim.detected_minute)
