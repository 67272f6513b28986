// Customers: my devices, my tickets (plain-language status, cost), booking, guide, survey.
import { get, post } from "../api.js";
import { getOrNotFound } from "../found.js";
import { t, title, lang } from "../i18n.js";
import { h, when, table, field, statusBadge, badge, link, showError, loading, money } from "../ui.js";

const CLOSED = ["resolved", "closed", "cancelled"];

export async function devices({ render }) {
  render(h("h1", {}, t("devices.title")), loading());
  const list = await get("/me/devices");
  render(h("h1", {}, t("devices.title")),
    list.length ? h("ul", { class: "cards" }, list.map(deviceCard)) : h("p", { class: "empty" }, t("devices.none")));
}

function deviceCard(d) {
  return h("li", { class: "card", "data-thing": d.thing },
    h("h2", {}, `${d.model} · ${d.serial}`),
    h("dl", { class: "facts" },
      h("dt", {}, t("ticket.warranty")),
      h("dd", {}, d.warranty.in_warranty ? t("devices.warranty_until", { at: when(d.warranty.until) }) : h("span", { class: "risk" }, t("devices.warranty_over"))),
      h("dt", {}, t("device.health")),
      h("dd", {}, d.open_tickets.length ? h("span", { class: "risk" }, t("device.active", { n: d.open_tickets.length })) : t("device.healthy")),
      h("dt", {}, t("device.last_seen")),
      h("dd", {}, d.last_seen ? when(d.last_seen) : t("device.never"))),
    d.open_tickets.length ? h("ul", {}, d.open_tickets.map((x) => h("li", {}, link(`/my-tickets/${x.ticket_id}`, `${x.ticket_id} · ${x.fault_code}`), " ", statusBadge(x.status)))) : null,
    d.advice && d.advice.length ? h("div", { class: "advice" }, h("h3", {}, t("devices.advice")),
      h("ul", {}, d.advice.map((a) => h("li", {}, title(a), a.price ? ` · ${money(a.price, a.currency)}` : "")))) : null);
}

export async function tickets({ render }) {
  render(h("h1", {}, t("my_tickets.title")), loading());
  const rows = await get("/tickets", { limit: 50 });
  render(h("h1", {}, t("my_tickets.title")), rows.length ? table(
    [t("ticket.id"), t("ticket.fault"), t("queue.status"), t("ticket.opened")],
    rows.map((r) => h("tr", { "data-ticket": r.ticket_id },
      h("td", {}, link(`/my-tickets/${r.ticket_id}`, r.ticket_id)), h("td", {}, r.title_en),
      h("td", {}, t(`plain.${r.status}`)), h("td", {}, when(r.opened_at))))) : h("p", { class: "empty" }, t("my_tickets.none")));
}

export async function ticket({ params, render }) {
  render(loading());
  const view = await getOrNotFound(`/tickets/${encodeURIComponent(params.id)}`, render,
    { also: [403], back: ["/my-tickets", t("my_tickets.title")] });
  if (!view) return;
  const [bookings, guide] = await Promise.all([
    get(`/tickets/${view.ticket_id}/bookings`).catch(() => []),
    // A guide is offered only where one exists (404 `no_guide` otherwise).
    get("/guides", { code: view.fault_code, model: view.model, lang: lang() }).catch(() => null),
  ]);
  const live = bookings.find((b) => ["scheduled", "en_route", "on_site"].includes(b.status));
  const visitBox = h("div", { id: "visit" });
  render(
    h("p", {}, link("/my-tickets", `← ${t("my_tickets.title")}`)),
    h("h1", {}, title(view)),
    h("p", { class: "plain", id: "plain-status" }, t(`plain.${view.status}`)),
    h("section", { class: "card" }, h("h2", {}, t("cost.title")), cost(view)),
    h("section", { class: "card" }, h("h2", {}, t("visit.title")), visitBox),
    guide ? h("section", { class: "card" }, h("h2", {}, t("guide.title")),
      h("p", {}, link(`/guide/${view.fault_code}?model=${encodeURIComponent(view.model)}&ticket=${view.ticket_id}`, `${t("guide.open")}: ${guide.title}`))) : null,
    CLOSED.includes(view.status) && view.status !== "cancelled" ? h("section", { class: "card" }, h("h2", {}, t("survey.title")),
      h("p", {}, h("a", { href: "#", id: "survey-link", onclick: async (e) => { e.preventDefault(); location.hash = `/surveys/${await surveyId(view.ticket_id)}`; } }, t("survey.open")))) : null,
  );
  visitPanel(view, live, visitBox);
}

// The API's estimate (price table: parts still held or used + labour of the expected path).
function cost(view) {
  const e = view.estimate;
  const lines = (view.parts || []).filter((p) => !["released", "expired"].includes(p.status));
  return h("div", { id: "cost", "data-pays": e ? e.customer_pays : "" },
    e ? h("p", { class: "pays" }, e.in_warranty ? t("cost.warranty") : t("cost.pays", { total: money(Number(e.customer_pays), e.currency) })) : null,
    lines.length ? h("ul", {}, lines.map((p) => h("li", {}, `${title({ title_en: p.name_en, title_zh: p.name_zh })} × ${p.qty}: ${money(p.unit_price * p.qty, p.currency)}`))) : null,
    e ? h("dl", { class: "facts" },
      h("dt", {}, t("cost.parts")), h("dd", {}, money(Number(e.parts), e.currency)),
      h("dt", {}, e.on_site ? t("cost.labour_on_site") : t("cost.labour_remote")), h("dd", {}, money(Number(e.labour), e.currency)),
      h("dt", {}, t("cost.total")), h("dd", {}, money(Number(e.total), e.currency))) : null,
    e ? h("p", { class: "muted" }, t("cost.version", { version: e.pricing_version })) : null);
}

function visitPanel(view, live, box) {
  if (live) {
    box.replaceChildren(
      h("p", { id: "booked" }, t("visit.booked", { start: when(live.start), end: when(live.end) })),
      h("button", { type: "button", onclick: () => slotPicker(view, box, live) }, t("visit.reschedule")));
    return;
  }
  if (CLOSED.includes(view.status)) { box.replaceChildren(h("p", { class: "muted" }, t("visit.not_needed"))); return; }
  box.replaceChildren(h("button", { type: "button", id: "book-visit", onclick: () => slotPicker(view, box, null) }, t("visit.book")));
}

async function slotPicker(view, box, booking) {
  box.replaceChildren(loading());
  let slots;
  try {
    slots = await get(`/tickets/${view.ticket_id}/slots`);
  } catch (error) {
    showError(error, box);
    return;
  }
  if (!slots.length) { box.replaceChildren(h("p", { class: "empty" }, t("visit.no_slots"))); return; }
  const problem = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, booking ? t("visit.confirm_move") : t("visit.confirm"));
  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    const chosen = new FormData(form).get("slot");
    if (!chosen) return;
    submit.disabled = true;
    try {
      const done = booking
        ? await post(`/bookings/${booking.booking_id}/reschedule`, { slot_id: chosen, reason: "customer asked for another time" })
        : await post(`/tickets/${view.ticket_id}/booking`, { slot_id: chosen });
      visitPanel(view, done, box);
    } catch (error) {
      showError(error, problem);
      submit.disabled = false;
    }
  } },
  h("fieldset", {}, h("legend", {}, t("visit.pick")),
    slots.map((s, i) => h("div", { class: "choice" },
      h("input", { type: "radio", name: "slot", value: s.slot_id, id: `slot-${i}`, required: true }),
      h("label", { for: `slot-${i}` }, `${when(s.start)} – ${new Date(s.end).toLocaleTimeString(lang() === "zh-CN" ? "zh-CN" : "en-GB", { timeStyle: "short" })}`,
        s.within_sla === false ? ` (${t("visit.after_sla")})` : "")))),
  problem, submit);
  box.replaceChildren(form);
}

export async function guide({ params, query, render }) {
  render(loading());
  const g = await get("/guides", { code: params.code, model: query.get("model") || "", lang: lang() });
  const ticketId = query.get("ticket");
  const outcome = h("div", { "aria-live": "polite" });
  render(
    ticketId ? h("p", {}, link(`/my-tickets/${ticketId}`, `← ${ticketId}`)) : null,
    h("h1", {}, g.title),
    h("ol", { class: "steps" }, g.steps.map((s) => h("li", {}, s.text))),
    g.self_service && ticketId ? h("button", { type: "button", onclick: async (e) => {
      e.target.disabled = true;
      try {
        await post(`/tickets/${ticketId}/self-service`, {});
        outcome.replaceChildren(h("p", {}, t("guide.checking")));
      } catch (error) { showError(error, outcome); e.target.disabled = false; }
    } }, t("guide.done")) : null,
    outcome);
}

export async function survey({ params, render }) {
  render(loading());
  const s = await getOrNotFound(`/surveys/${encodeURIComponent(params.id)}`, render,
    { also: [403], back: ["/my-tickets", t("my_tickets.title")] });
  if (!s) return;
  if (s.rating) {
    render(h("h1", {}, t("survey.title")), h("p", { id: "survey-thanks" }, t("survey.thanks", { rating: s.rating })));
    return;
  }
  const problem = h("div", { "aria-live": "polite" });
  const comment = h("textarea", { name: "comment", maxlength: "1000", rows: "3" });
  const form = h("form", { class: "card narrow", onsubmit: async (event) => {
    event.preventDefault();
    const rating = Number(new FormData(form).get("rating"));
    if (!rating) return;
    try {
      const answered = await post(`/surveys/${s.survey_id}/answer`, { rating, comment: comment.value || null });
      render(h("h1", {}, t("survey.title")), h("p", { id: "survey-thanks" }, t("survey.thanks", { rating: answered.rating })));
    } catch (error) { showError(error, problem); }
  } },
  h("h1", {}, t("survey.title")),
  h("p", {}, title(s)),
  h("fieldset", { class: "rating" }, h("legend", {}, t("survey.question")),
    [1, 2, 3, 4, 5].map((n) => h("span", { class: "choice" },
      h("input", { type: "radio", name: "rating", value: String(n), id: `rating-${n}`, required: true }),
      h("label", { for: `rating-${n}` }, `${n} ${t(`survey.r${n}`)}`)))),
  field(t("survey.comment"), comment),
  problem,
  h("button", { type: "submit" }, t("survey.send")));
  render(form);
}

// The survey of a ticket has a deterministic id (aftercare.domain.surveys.survey_id_for):
// "S-" + the first 12 characters of base32(sha256("survey|" + ticket_id)).
export async function surveyId(ticketId) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`survey|${ticketId}`)));
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0, out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 12) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  return `S-${out}`;
}
