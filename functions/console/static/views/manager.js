// Managers: the dispatch board, the KPI dashboard, follow-ups from low scores, parked messages.
import { get, post } from "../api.js";
import { t } from "../i18n.js";
import { h, when, table, field, select, link, showError, loading, errorText } from "../ui.js";
import { lineChart, barChart } from "../charts.js";
import { go } from "../router.js";

const today = () => new Date().toISOString().slice(0, 10);
const DAY_MS = 86_400_000;

// ---- dispatch board -----------------------------------------------------------------------
export async function dispatch({ query, render }) {
  const date = query.get("date") || today();
  const picker = h("input", { type: "date", name: "date", value: date, onchange: () => go(`/dispatch?date=${picker.value}`) });
  render(h("h1", {}, t("dispatch.title")), loading());
  const [rows, engineers] = await Promise.all([get("/dispatch/board", { date }), get("/engineers")]);
  const tickets = new Map(await Promise.all([...new Set(rows.map((r) => r.ticket_id))].map(async (id) =>
    [id, await get(`/tickets/${id}`).catch(() => null)])));
  const panel = h("div", { id: "assign-panel", "aria-live": "polite" }, h("p", { class: "muted" }, t("dispatch.pick_hint")));
  const hours = [];
  for (let hour = 6; hour < 22; hour += 1) hours.push(hour);
  const startOfDay = Date.parse(`${date}T00:00:00Z`);
  const grid = h("div", { class: "board", role: "table", "aria-label": t("dispatch.title") },
    h("div", { class: "board-row board-head", role: "row" }, h("span", { role: "columnheader" }, t("booking.engineer")),
      h("div", { class: "board-track" }, hours.map((x) => h("span", { class: "hour", role: "columnheader" }, `${String(x).padStart(2, "0")}:00`)))),
    engineers.filter((e) => e.active !== false).map((e) => h("div", { class: "board-row", role: "row" },
      h("span", { role: "rowheader" }, `${e.name}`, h("small", {}, ` ${e.engineer_id}${e.partner ? ` · ${e.partner}` : ""}`)),
      h("div", { class: "board-track", role: "cell" }, rows.filter((r) => r.engineer_id === e.engineer_id && r.status !== "cancelled").map((r) => {
        const ticket = tickets.get(r.ticket_id);
        const risk = ticket && ticket.sla_resolution_due && Date.parse(ticket.sla_resolution_due) < Date.parse(r.end);
        const left = ((Date.parse(r.start) - startOfDay) / 3600_000 - hours[0]) / hours.length * 100;
        const width = (Date.parse(r.end) - Date.parse(r.start)) / 3600_000 / hours.length * 100;
        const block = h("button", { type: "button", class: `booking${risk ? " risk-block" : ""}`, "data-booking": r.booking_id,
          title: `${r.ticket_id} ${when(r.start)}${risk ? ` · ${t("dispatch.sla_risk")}` : ""}`,
          onclick: () => assignForm(r, ticket, engineers, panel, date) },
        r.ticket_id, risk ? ` ⚠ ${t("dispatch.sla_risk")}` : "");
        block.style.left = `${Math.max(0, left)}%`;
        block.style.width = `${Math.max(4, width)}%`;
        return block;
      })))));
  render(h("h1", {}, t("dispatch.title")), h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, field(t("jobs.date"), picker)),
    h("div", { class: "table-wrap" }, grid), panel,
    rows.length ? null : h("p", { class: "empty" }, t("dispatch.none")));
}

function assignForm(row, ticket, engineers, panel, date) {
  const engineer = select("engineer_id", engineers.map((e) => [e.engineer_id, `${e.name} (${e.engineer_id})`]), row.engineer_id);
  const start = h("input", { type: "datetime-local", name: "start", value: row.start.slice(0, 16), required: true });
  const problem = h("div", { "aria-live": "assertive", id: "assign-problem" });
  panel.replaceChildren(h("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await post("/dispatch/assign", { ticket_id: row.ticket_id, engineer_id: engineer.value, start: new Date(`${start.value}:00Z`).toISOString() });
      go(`/dispatch?date=${date}&moved=${Date.now()}`);
    } catch (error) {
      problem.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(error)));
    }
  } },
  h("h2", {}, t("dispatch.move", { id: row.ticket_id })),
  ticket ? h("p", {}, `${ticket.fault_code} · ${ticket.region} · ${t("ticket.sla_resolution")}: ${when(ticket.sla_resolution_due)}`) : null,
  field(t("booking.engineer"), engineer), field(t("dispatch.start_utc"), start), problem,
  h("button", { type: "submit" }, t("dispatch.assign"))));
  engineer.focus();
}

// ---- KPI dashboard -------------------------------------------------------------------------
const TREND = ["opened", "resolved", "first_time_fix_rate", "repair_success_rate", "csat", "sla_breaches", "response_mean_min"];
const DIMENSIONS = ["region", "model", "engineer", "partner", "channel", "category", "priority"];

function flat(kpis, prefix = "") {
  const out = {};
  for (const [k, v] of Object.entries(kpis || {})) {
    if (typeof v === "number") out[prefix + k] = v;
    else if (v && typeof v === "object" && !Array.isArray(v)) Object.assign(out, flat(v, `${prefix}${k}.`));
  }
  return out;
}

export async function kpis({ query, render }) {
  const days = Number(query.get("days") || 7);
  const metric = query.get("metric") || "opened";
  const by = query.get("by") || "region";
  const to = today();
  const from = new Date(Date.parse(to) - (days - 1) * DAY_MS).toISOString().slice(0, 10);
  render(h("h1", {}, t("kpis.title")), loading());
  // Three reads: the total, the breakdown, and the trend (`by=day`: a figure set per day).
  const [total, groups, perDay] = await Promise.all([
    get("/kpis", { from, to }), get("/kpis", { from, to, by }), get("/kpis", { from, to, by: "day" }),
  ]);
  const headline = flat(total.kpis);
  const controls = h("form", { class: "filters", onchange: (e) => {
    const data = new FormData(e.currentTarget);
    go(`/kpis?${new URLSearchParams([...data.entries()])}`);
  }, onsubmit: (e) => e.preventDefault() },
  field(t("kpis.period"), select("days", [["7", t("kpis.days", { n: 7 })], ["14", t("kpis.days", { n: 14 })], ["30", t("kpis.days", { n: 30 })]], String(days))),
  field(t("kpis.metric"), select("metric", TREND.map((m) => [m, t(`kpi.${m}`)]), metric)),
  field(t("kpis.by"), select("by", DIMENSIONS.map((d) => [d, t(`dim.${d}`)]), by)));
  const trend = perDay.map((d) => [new Date(`${d.period.from}T00:00:00Z`), round(flat(d.kpis)[metric] ?? 0)]);
  const bars = (Array.isArray(groups) ? groups : []).map((g) => ({
    label: Object.values(g.group || {}).join(" ") || "—", value: round(flat(g.kpis)[metric] ?? 0),
  })).sort((a, b) => b.value - a.value).slice(0, 12);
  render(
    h("h1", {}, t("kpis.title")),
    controls,
    h("p", { class: "muted" }, t("kpis.range", { from, to })),
    h("ul", { class: "tiles", id: "kpi-tiles" }, ["opened", "resolved", "first_time_fix_rate", "repair_success_rate", "remote_fix_ratio", "repeat_fault_rate", "csat", "sla_breaches"].map((k) =>
      h("li", { class: "tile", "data-kpi": k }, h("span", { class: "tile-value" }, fmt(headline[k])), h("span", { class: "tile-name" }, t(`kpi.${k}`))))),
    h("section", { class: "card", id: "kpi-trend" }, h("h2", {}, t("kpis.trend", { metric: t(`kpi.${metric}`) })),
      lineChart([{ name: t(`kpi.${metric}`), points: trend }], { label: t("kpis.trend", { metric: t(`kpi.${metric}`) }) })),
    h("section", { class: "card", id: "kpi-breakdown" }, h("h2", {}, t("kpis.breakdown", { metric: t(`kpi.${metric}`), by: t(`dim.${by}`) })),
      bars.length ? barChart(bars, { label: t("kpis.breakdown", { metric: t(`kpi.${metric}`), by: t(`dim.${by}`) }) }) : h("p", { class: "empty" }, t("none"))),
    h("details", { class: "card" }, h("summary", {}, t("kpis.all")), table([t("kpis.metric"), t("kpis.value")],
      Object.entries(headline).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, fmt(v)))))),
  );
}

const round = (v) => Math.round(v * 100) / 100;
const fmt = (v) => (v === undefined || v === null ? "—" : String(round(v)));

// ---- follow-ups from low scores and parked messages ----------------------------------------
export async function followups({ render }) {
  render(h("h1", {}, t("followups.title")), loading());
  const items = await get("/followups", { limit: 100 });
  render(h("h1", {}, t("followups.title")), items.length ? table(
    [t("ticket.id"), t("ticket.fault"), t("followups.rating"), t("followups.comment"), t("ticket.customer"), t("followups.created"), t("queue.status")],
    items.map((f) => h("tr", { "data-survey": f.survey_id }, h("td", {}, link(`/tickets/${f.ticket_id}`, f.ticket_id)), h("td", {}, f.fault_code || "—"),
      h("td", { class: "num" }, h("span", { class: "risk" }, String(f.rating))), h("td", {}, f.comment || "—"),
      h("td", {}, f.customer_id), h("td", {}, when(f.created_at)), h("td", {}, f.status || "—")))) : h("p", { class: "empty" }, t("followups.none")));
}

export async function parked({ render }) {
  render(h("h1", {}, t("parked.title")), loading());
  const items = await get("/parked", { limit: 100 });
  const outcome = h("div", { "aria-live": "polite", id: "replay-outcome" });
  render(h("h1", {}, t("parked.title")), outcome, items.length ? table(
    [t("parked.source"), t("parked.reason"), t("ticket.device"), t("parked.received"), t("parked.replays"), ""],
    items.map((p) => h("tr", { "data-parked": p.parked_key }, h("td", {}, p.source), h("td", {}, p.reason, p.detail ? h("small", { class: "muted" }, ` ${p.detail}`) : null),
      h("td", {}, p.thing || "—"), h("td", {}, when(p.received_at)), h("td", { class: "num" }, String(p.replay_count || 0)),
      h("td", {}, p.replayable ? h("button", { type: "button", onclick: async (e) => {
        e.target.disabled = true;
        try {
          const done = await post("/parked/replay", { source: p.source, parked_key: p.parked_key });
          outcome.replaceChildren(h("p", { class: done.outcome === "replayed" ? "" : "error" },
            t(`parked.outcome.${done.outcome}`, { queue: done.queue || "", why: done.why || "" })));
        } catch (error) { showError(error, outcome); e.target.disabled = false; }
      } }, t("parked.replay")) : h("span", { class: "muted" }, p.why_not || t("parked.not_replayable")))))) : h("p", { class: "empty" }, t("none")));
}
