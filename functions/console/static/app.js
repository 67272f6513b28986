// The console's entry: config, sign-in, role-aware navigation, and the hash routes.
import * as auth from "./auth.js";
import * as api from "./api.js";
import { route, current, go } from "./router.js";
import { t, lang, setLang, applyStatic } from "./i18n.js";
import { h, render, clearAlert, errorText, field, newPage, renderer, isCurrent } from "./ui.js";
import { leave } from "./live.js";
import * as engineer from "./views/engineer.js";
import * as customer from "./views/customer.js";
import * as manager from "./views/manager.js";

const NAV = {
  engineer: [["/queue", "nav.queue"], ["/jobs", "nav.jobs"]],
  manager: [["/queue", "nav.queue"], ["/dispatch", "nav.dispatch"], ["/kpis", "nav.kpis"],
    ["/followups", "nav.followups"], ["/parked", "nav.parked"]],
  customer: [["/devices", "nav.devices"], ["/my-tickets", "nav.my_tickets"]],
};
const HOME = { engineer: "/queue", manager: "/kpis", customer: "/devices" };
const STAFF = ["engineer", "manager"];

route("/signin", signInView);
route("/queue", engineer.queue, STAFF);
route("/tickets/:id", engineer.ticket, STAFF);
route("/devices/:thing", engineer.device, STAFF);
route("/jobs", engineer.jobs, STAFF);
route("/devices", customer.devices);
route("/my-tickets", customer.tickets);
route("/my-tickets/:id", customer.ticket);
route("/guide/:code", customer.guide);
route("/surveys/:id", customer.survey);
route("/dispatch", manager.dispatch);
route("/kpis", manager.kpis);
route("/followups", manager.followups);
route("/parked", manager.parked);

function renderHeader() {
  const session = auth.session();
  const who = auth.role(session);
  const nav = document.getElementById("nav");
  const here = current().path;
  nav.replaceChildren(
    h("ul", {}, (NAV[who] || []).map(([path, key]) => h("li", {},
      h("a", { href: `#${path}`, "aria-current": here.startsWith(path) ? "page" : false }, t(key))))),
  );
  document.getElementById("who").textContent = session ? `${session.username} · ${t(`role.${who}`)}` : "";
  const out = document.getElementById("signout");
  out.hidden = !session;
  out.textContent = t("signout");
}

function signInView() {
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const problem = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, t("signin.submit"));
  const form = h("form", {
    class: "card narrow",
    onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      problem.replaceChildren();
      try {
        const session = await auth.signIn(user.value.trim(), password.value);
        const who = auth.role(session);
        if (!who) throw Object.assign(new Error(""), { reason: "no_role" });
        go(HOME[who]);
      } catch (error) {
        problem.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(error)));
        button.disabled = false;
      }
    },
  },
  h("h1", {}, t("signin.title")),
  field(t("signin.username"), user),
  field(t("signin.password"), password),
  problem,
  button);
  render(form);
  user.focus();
}

async function show() {
  leave();
  clearAlert();
  const session = auth.session();
  const found = current();
  if (!session && found.path !== "/signin") { go("/signin"); return; }
  const who = auth.role(session);
  if (session && (found.path === "/" || found.path === "/signin" || !found.route)) {
    go(HOME[who] || "/signin");
    return;
  }
  renderHeader();
  const { route: r } = found;
  if (r.pattern !== "/signin" && !canSee(who, r.pattern)) {
    render(h("h1", {}, t("forbidden")));
    return;
  }
  const page = newPage();
  try {
    const alive = () => isCurrent(page);
    await r.view({ params: found.params, query: found.query, session, role: who, render: renderer(page), alive });
  } catch (error) {
    if (!isCurrent(page)) return;
    if (error instanceof api.ApiError && error.status === 401) { auth.signOut(); go("/signin"); return; }
    render(h("p", { class: "error", role: "alert" }, errorText(error)));
  }
  if (isCurrent(page)) document.getElementById("main").focus({ preventScroll: true });
}

function canSee(who, pattern) {
  return (NAV[who] || []).some(([path]) => pattern.startsWith(path))
    || (STAFF.includes(who) && ["/tickets/:id", "/devices/:thing"].includes(pattern))
    || (who === "customer" && ["/my-tickets/:id", "/guide/:code", "/surveys/:id"].includes(pattern));
}

async function boot() {
  const response = await fetch(new URL("../../config.json", import.meta.url), { cache: "no-cache" });
  const config = await response.json();
  auth.configure(config);
  api.configure(config);
  const picker = document.getElementById("lang");
  picker.value = lang();
  picker.addEventListener("change", () => { setLang(picker.value); applyStatic(); show(); });
  document.getElementById("signout").addEventListener("click", () => { auth.signOut(); go("/signin"); });
  applyStatic();
  window.addEventListener("hashchange", show);
  show();
}

boot();
