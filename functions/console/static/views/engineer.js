// Engineers (and managers): the ticket queue, a ticket, a device, today's jobs.
import { get, post } from "../api.js";
import { getOrNotFound } from "../found.js";
import { t, title } from "../i18n.js";
import { h, when, table, field, select, statusBadge, badge, link, showError, loading, money, errorText } from "../ui.js";
import { every } from "../live.js";
import { lineChart } from "../charts.js";
import { go } from "../router.js";

const STATUSES = ["open", "diagnosing", "awaiting_parts", "scheduled", "in_repair", "resolved", "closed", "cancelled"];
const PRIORITIES = ["P1", "P2", "P3", "P4"];
const REGIONS = ["eu-west", "eu-central", "us-east", "ap-east"];
const ROUTINES = ["self_test", "sensor_snapshot", "log_excerpt", "reset_component"];
const POLL_MS = 4000;
const FULL_EVERY = 15; // every 15th poll (a minute) reads the whole first page again
const SKEW_MS = 5000; // updated_since reaches back this far before the previous poll (clock skew)
const PAGE = 50;

// ---- queue ------------------------------------------------------------------------------
export async function queue({ query, render, alive }) {
  const filters = {
    status: query.get("status") || "",
    priority: query.get("priority") || "",
    region: query.get("region") || "",
    sla_due_before: query.get("sla_due_before") || "",
  };
  const form = h("form", { class: "filters", "aria-label": t("queue.filters"), onchange: apply, onsubmit: apply },
    field(t("queue.status"), select("status", [["", t("any")], ...STATUSES.map((s) => [s, t(`status.${s}`)])], filters.status)),
    field(t("queue.priority"), select("priority", [["", t("any")], ...PRIORITIES.map((p) => [p, p])], filters.priority)),
    field(t("queue.region"), select("region", [["", t("any")], ...REGIONS.map((r) => [r, r])], filters.region)),
    field(t("queue.sla_due"), select("sla_due_before", [["", t("any")], ["1", t("queue.within_hours", { n: 1 })],
      ["4", t("queue.within_hours", { n: 4 })], ["24", t("queue.within_hours", { n: 24 })]], filters.sla_due_before)));
  const updated = h("p", { class: "muted", "aria-live": "polite", id: "queue-updated" });
  const body = h("div", {}, loading());
  render(h("h1", {}, t("queue.title")), form, updated, body);

  function apply(event) {
    event.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams([...data.entries()].filter(([, v]) => v));
    go(`/queue${params.toString() ? `?${params}` : ""}`);
  }

  // The first page once, then every POLL_MS only what changed since the previous poll
  // (`updated_since`), merged by ticket id. A change that takes a ticket out of the filter is
  // not in a delta, so every FULL_EVERY-th poll (and after a burst of changes) reads the page
  // again and drops what left.
  const shown = new Map();
  let since = null;
  let polls = 0;
  let busy = false;
  async function load(full) {
    const started = Date.now();
    const hours = Number(filters.sla_due_before);
    const rows = await get("/tickets", {
      status: filters.status,
      priority: filters.priority,
      region: filters.region,
      sla_due_before: hours ? new Date(started + hours * 3600_000).toISOString() : "",
      updated_since: full ? "" : new Date(since - SKEW_MS).toISOString(),
      limit: PAGE,
    });
    if (!full && rows.length >= PAGE) { await load(true); return; }
    const before = new Map(shown);
    if (full) shown.clear();
    const flash = new Set();
    for (const r of rows) {
      const old = before.get(r.ticket_id);
      if (before.size && (!old || old.updated_at !== r.updated_at)) flash.add(r.ticket_id);
      shown.set(r.ticket_id, r);
    }
    const list = [...shown.values()].sort(newestFirst).slice(0, PAGE);
    for (const id of [...shown.keys()]) if (!list.some((r) => r.ticket_id === id)) shown.delete(id);
    since = started;
    draw(list, flash);
  }
  function draw(list, flash) {
    body.replaceChildren(list.length ? table(
      [t("ticket.id"), t("ticket.fault"), t("ticket.device"), t("queue.status"), t("queue.priority"), t("ticket.occurrences"), t("ticket.updated")],
      list.map((r) => h("tr", { class: flash.has(r.ticket_id) ? "flash" : "", "data-ticket": r.ticket_id },
        h("td", {}, link(`/tickets/${r.ticket_id}`, r.ticket_id)),
        h("td", {}, `${r.fault_code} · ${r.title_en}`),
        h("td", {}, link(`/devices/${r.thing}`, r.thing)),
        h("td", {}, statusBadge(r.status)),
        h("td", {}, badge(r.priority, r.priority)),
        h("td", { class: "num" }, r.occurrences),
        h("td", {}, when(r.updated_at)))),
      t("queue.caption", { n: list.length }),
    ) : h("p", { class: "empty" }, t("queue.empty")));
    updated.textContent = t("queue.updated", { at: new Date().toLocaleTimeString() });
  }
  async function poll() {
    if (busy) return;
    busy = true;
    try {
      polls += 1;
      await load(polls % FULL_EVERY === 0);
    } finally {
      busy = false;
    }
  }
  await load(true);
  if (alive()) every(POLL_MS, () => poll().catch((e) => showError(e)));
}

// The listing's order: newest opened first (ties by id, as the API's index keys).
function newestFirst(a, b) {
  return Date.parse(b.opened_at) - Date.parse(a.opened_at) || (b.ticket_id > a.ticket_id ? 1 : b.ticket_id < a.ticket_id ? -1 : 0);
}

// ---- ticket -----------------------------------------------------------------------------
export async function ticket({ params, render }) {
  render(loading());
  const view = await getOrNotFound(`/tickets/${encodeURIComponent(params.id)}`, render, { back: ["/queue", t("queue.title")] });
  if (!view) return;
  const bookings = await get(`/tickets/${encodeURIComponent(params.id)}/bookings`).catch(() => []);
  const diagBox = h("div", { id: "diagnostics" });
  render(
    h("p", {}, link("/queue", `← ${t("queue.title")}`)),
    h("h1", {}, `${view.ticket_id} · ${title(view)}`),
    h("dl", { class: "facts" },
      fact(t("queue.status"), statusBadge(view.status)),
      fact(t("queue.priority"), badge(view.priority, view.priority)),
      fact(t("ticket.device"), link(`/devices/${view.thing}`, `${view.thing} (${view.model})`)),
      fact(t("queue.region"), view.region),
      fact(t("ticket.sla_response"), slaText(view.sla_response_due, view.status)),
      fact(t("ticket.sla_resolution"), slaText(view.sla_resolution_due, view.status)),
      fact(t("ticket.warranty"), view.in_warranty ? t("yes") : t("no")),
      fact(t("ticket.customer"), `${view.customer_id} (${view.customer_tier})`)),
    section(t("ticket.diagnostics"), diagnosticsPanel(view, diagBox)),
    section(t("ticket.occurrences"), occurrences(view.occurrence_history || [])),
    section(t("ticket.parts"), parts(view.parts || [])),
    section(t("ticket.bookings"), bookingsTable(bookings)),
    section(t("ticket.timeline"), timeline(view.timeline || [])),
  );
}

function fact(name, value) { return [h("dt", {}, name), h("dd", {}, value)]; }
function section(name, content) { return h("section", { class: "card" }, h("h2", {}, name), content); }

function slaText(due, status) {
  if (!due) return "—";
  const late = new Date(due) < new Date() && !["resolved", "closed", "cancelled"].includes(status);
  return h("span", { class: late ? "risk" : "" }, when(due), late ? ` · ${t("sla.breached")}` : "");
}

function diagnosticsPanel(view, box) {
  const routine = select("routine", ROUTINES.map((r) => [r, t(`routine.${r}`)]), view.routine || "self_test");
  const run = h("button", { type: "submit", id: "run-diagnostic" }, t("diag.run"));
  const status = h("div", { "aria-live": "polite", id: "diag-status" });
  const list = h("div", {});
  const form = h("form", { class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    run.disabled = true;
    status.replaceChildren(h("p", { class: "muted" }, t("diag.sent")));
    try {
      const record = await post(`/tickets/${view.ticket_id}/diagnostics`, { routine: routine.value });
      await follow(record.request_id, status);
      await refresh();
    } catch (error) {
      showError(error, status);
    } finally {
      run.disabled = false;
    }
  } }, field(t("diag.routine"), routine), run);
  async function refresh() {
    const answer = await get(`/tickets/${view.ticket_id}/diagnostics`);
    list.replaceChildren(diagnosticsTable(answer.diagnostics));
  }
  list.replaceChildren(diagnosticsTable(view.diagnostics || []));
  box.replaceChildren(form, status, list);
  return box;
}

// Poll one diagnostic until the device answers (or it times out); show its result.
async function follow(requestId, where) {
  for (;;) {
    const record = await get(`/diagnostics/${requestId}`);
    if (record.status !== "pending") {
      where.replaceChildren(diagnosticResult(record));
      return record;
    }
    where.replaceChildren(h("p", { class: "muted" }, t("diag.waiting", { id: requestId })));
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function diagnosticResult(record) {
  const result = record.result;
  return h("div", { class: "result", id: "diag-result", "data-status": result ? result.status : record.status },
    h("p", {}, h("strong", {}, t(`routine.${record.routine}`)), " — ",
      result ? badge(result.status, t(`diag.status.${result.status}`)) : badge(record.status, t(`diag.state.${record.status}`)),
      record.latency_ms ? ` · ${record.latency_ms} ms` : ""),
    result && result.findings && Object.keys(result.findings).length
      ? h("dl", { class: "facts" }, Object.entries(result.findings).map(([k, v]) => fact(k, typeof v === "object" ? JSON.stringify(v) : String(v))))
      : null,
    result && result.remedied ? h("p", {}, t("diag.remedied")) : null,
    record.outcome ? h("p", { class: "muted" }, t("diag.outcome"), ": ", record.outcome) : null);
}

function diagnosticsTable(records) {
  if (!records.length) return h("p", { class: "empty" }, t("diag.none"));
  return table([t("diag.routine"), t("diag.purpose"), t("diag.requested"), t("queue.status"), t("diag.result")],
    records.map((r) => h("tr", {},
      h("td", {}, t(`routine.${r.routine}`)), h("td", {}, r.purpose), h("td", {}, when(r.requested_at)),
      h("td", {}, badge(r.status, t(`diag.state.${r.status}`))),
      h("td", {}, r.result ? `${t(`diag.status.${r.result.status}`)}${r.outcome ? ` (${r.outcome})` : ""}` : "—"))));
}

function occurrences(list) {
  if (!list.length) return h("p", { class: "empty" }, t("none"));
  return table([t("occ.at"), t("occ.severity"), t("occ.firmware"), t("occ.readings")],
    list.map((o) => h("tr", {}, h("td", {}, when(o.occurred_at)), h("td", {}, o.severity), h("td", {}, o.firmware),
      h("td", {}, Object.entries(o.readings || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "—"))));
}

function parts(lines) {
  if (!lines.length) return h("p", { class: "empty" }, t("none"));
  return table([t("parts.sku"), t("parts.name"), t("parts.qty"), t("parts.price"), t("queue.status")],
    lines.map((p) => h("tr", {}, h("td", {}, p.sku), h("td", {}, title({ title_en: p.name_en, title_zh: p.name_zh })),
      h("td", { class: "num" }, p.qty), h("td", { class: "num" }, money(p.unit_price * p.qty, p.currency)), h("td", {}, p.status))));
}

function bookingsTable(list) {
  if (!list.length) return h("p", { class: "empty" }, t("none"));
  return table([t("booking.id"), t("booking.engineer"), t("booking.start"), t("booking.end"), t("queue.status")],
    list.map((b) => h("tr", {}, h("td", {}, b.booking_id), h("td", {}, b.engineer_id), h("td", {}, when(b.start)),
      h("td", {}, when(b.end)), h("td", {}, badge(b.status, t(`booking.status.${b.status}`))))));
}

function timeline(entries) {
  if (!entries.length) return h("p", { class: "empty" }, t("none"));
  return h("ol", { class: "timeline" }, entries.map((e) => h("li", {},
    h("time", { datetime: e.at }, when(e.at)), " ", h("strong", {}, e.kind), ` · ${e.actor}`)));
}

// ---- device -----------------------------------------------------------------------------
export async function device({ params, render }) {
  render(loading());
  const status = await getOrNotFound(`/devices/${encodeURIComponent(params.thing)}`, render, { back: ["/queue", t("queue.title")] });
  if (!status) return;
  const chart = h("div", { class: "chart-box" }, loading());
  render(
    h("h1", {}, `${status.thing} · ${status.model}`),
    h("dl", { class: "facts" },
      fact(t("device.serial"), status.serial), fact(t("queue.region"), status.region),
      fact(t("device.firmware"), status.firmware), fact(t("ticket.customer"), status.customer_id),
      fact(t("device.warranty_until"), when(status.warranty_until)),
      fact(t("device.last_seen"), status.last_seen ? `${when(status.last_seen)} (${status.last_seen_via || ""})` : t("device.never")),
      fact(t("device.health"), status.active_tickets ? h("span", { class: "risk" }, t("device.active", { n: status.active_tickets })) : t("device.healthy"))),
    section(t("device.telemetry"), chart),
    section(t("device.history"), status.tickets.length ? table(
      [t("ticket.id"), t("ticket.fault"), t("queue.status"), t("ticket.opened")],
      status.tickets.map((x) => h("tr", {}, h("td", {}, link(`/tickets/${x.ticket_id}`, x.ticket_id)),
        h("td", {}, `${x.fault_code} · ${title(x)}`), h("td", {}, statusBadge(x.status)), h("td", {}, when(x.opened_at))))) : h("p", { class: "empty" }, t("none"))));
  try {
    chart.replaceChildren(...telemetryView(await get(`/devices/${encodeURIComponent(params.thing)}/telemetry`)));
  } catch (error) {
    chart.replaceChildren(h("p", { class: "empty" }, error.status === 404 ? t("device.no_telemetry") : errorText(error)));
  }
}

// GET /devices/{thing}/telemetry: the latest readings and the daily mean temperature.
function telemetryView(series) {
  const latest = series.latest;
  if (!latest) return [h("p", { class: "empty" }, t("device.no_telemetry"))];
  const readings = ["temp_c", "temp_ewma", "uptime_s", "fan_hours", "filter_life_pct", "charge_cycles"]
    .filter((k) => latest[k] !== null && latest[k] !== undefined);
  const daily = (series.daily || []).filter((d) => typeof d.temp_c_mean === "number");
  return [
    h("dl", { class: "facts", id: "telemetry-latest" },
      fact(t("device.reported"), `${when(latest.received_at)} · ${t("device.reports", { n: series.reports })}`),
      series.offline_since ? fact(t("device.offline_since"), h("span", { class: "risk" }, when(series.offline_since))) : null,
      readings.map((k) => fact(t(`reading.${k}`), String(Math.round(latest[k] * 100) / 100)))),
    daily.length
      ? lineChart([{ name: t("device.temp_mean"), points: daily.map((d) => [new Date(`${d.day}T00:00:00Z`), Math.round(d.temp_c_mean * 10) / 10]) }],
        { label: t("device.temp_chart") })
      : h("p", { class: "empty" }, t("device.no_daily")),
  ];
}

// ---- today's jobs -----------------------------------------------------------------------
// What an engineer may report next on a booking (the API's BOOKING_TRANSITIONS, minus cancel).
const NEXT = {
  scheduled: ["en_route", "cannot_complete"],
  en_route: ["on_site", "cannot_complete"],
  on_site: ["completed", "cannot_complete"],
};

export async function jobs({ query, render, alive }) {
  const date = query.get("date") || new Date().toISOString().slice(0, 10);
  const picker = h("input", { type: "date", name: "date", value: date, onchange: () => go(`/jobs?date=${picker.value}`) });
  const outcome = h("div", { "aria-live": "polite", id: "job-outcome" });
  const panel = h("div", { id: "job-panel" });
  const body = h("div", {}, loading());
  render(h("h1", {}, t("jobs.title")), h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, field(t("jobs.date"), picker)),
    outcome, panel, body);

  async function load() {
    const list = await get("/me/jobs", { date });
    if (!alive()) return;
    body.replaceChildren(list.length ? table(
      [t("booking.start"), t("booking.end"), t("ticket.id"), t("ticket.fault"), t("ticket.device"), t("queue.status"), t("jobs.ticket_status"), t("jobs.actions")],
      list.map((j) => h("tr", { "data-booking": j.booking_id }, h("td", {}, when(j.start)), h("td", {}, when(j.end)),
        h("td", {}, link(`/tickets/${j.ticket_id}`, j.ticket_id)), h("td", {}, j.fault_code ? `${j.fault_code} · ${j.title_en || ""}` : "—"),
        h("td", {}, link(`/devices/${j.thing}`, j.thing)), h("td", {}, badge(j.status, t(`booking.status.${j.status}`))),
        h("td", {}, j.ticket_status ? statusBadge(j.ticket_status) : "—"),
        h("td", { class: "actions" }, (NEXT[j.status] || []).map((next) => h("button", {
          type: "button", "data-status": next, onclick: () => choose(j, next),
        }, t(`jobs.do.${next}`))))))) : h("p", { class: "empty" }, t("jobs.none")));
  }

  // en_route and on_site are sent at once; completed and cannot_complete ask for details first.
  function choose(job, status) {
    outcome.replaceChildren();
    if (status === "completed") completeForm(job, panel, send);
    else if (status === "cannot_complete") cannotCompleteForm(job, panel, send);
    else send(job, status, {});
  }

  // The change, checked against the version the list showed: a 409 (`stale_version`,
  // `invalid_transition`) or 422 is shown with its reason, and the list is read again either way.
  async function send(job, status, details) {
    let ok = false;
    try {
      const result = await post(`/bookings/${encodeURIComponent(job.booking_id)}/status`, { status, expected_version: job.version, ...details });
      outcome.replaceChildren(h("p", { id: "job-result", "data-status": result.booking.status }, t(`jobs.done.${status}`, {
        id: job.ticket_id, ticket: result.ticket_status ? t(`status.${result.ticket_status}`) : "—",
      })));
      panel.replaceChildren();
      ok = true;
    } catch (error) {
      showError(error, outcome);
    }
    await load();
    return ok;
  }

  await load();
}

async function completeForm(job, panel, send) {
  panel.replaceChildren(loading());
  let view;
  try {
    view = await get(`/tickets/${encodeURIComponent(job.ticket_id)}`);
  } catch (error) {
    // No form without the held lines: an empty "parts used" would release every one of them.
    showError(error, panel);
    return;
  }
  const held = (view.parts || []).filter((p) => p.status === "held");
  const notes = h("textarea", { name: "notes", maxlength: "2000", rows: "3" });
  const submit = h("button", { type: "submit" }, t("jobs.do.completed"));
  const form = h("form", { class: "card", id: "complete-form", onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const used = new FormData(form).getAll("part");
    if (!(await send(job, "completed", { parts_used: used, notes: notes.value || null }))) submit.disabled = false;
  } },
  h("h2", {}, t("jobs.complete_title", { id: job.ticket_id })),
  held.length ? h("fieldset", {}, h("legend", {}, t("jobs.parts_used")),
    held.map((p, i) => h("div", { class: "choice" },
      h("input", { type: "checkbox", name: "part", value: p.sku, id: `part-${i}`, checked: true }),
      h("label", { for: `part-${i}` }, `${p.sku} · ${title({ title_en: p.name_en, title_zh: p.name_zh })} × ${p.qty}`))))
    : h("p", { class: "muted" }, t("jobs.no_held_parts")),
  field(t("jobs.notes"), notes),
  submit);
  panel.replaceChildren(form);
  submit.focus();
}

function cannotCompleteForm(job, panel, send) {
  const reason = h("input", { name: "reason", maxlength: "500", required: true });
  const submit = h("button", { type: "submit" }, t("jobs.do.cannot_complete"));
  const form = h("form", { class: "card", id: "cannot-complete-form", onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    if (!(await send(job, "cannot_complete", { reason: reason.value.trim() }))) submit.disabled = false;
  } },
  h("h2", {}, t("jobs.cannot_title", { id: job.ticket_id })),
  field(t("jobs.reason"), reason),
  submit);
  panel.replaceChildren(form);
  reason.focus();
}
