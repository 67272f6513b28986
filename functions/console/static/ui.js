// DOM helpers: h() builds elements (text is always text: no innerHTML), plus formatting.
import { t, lang } from "./i18n.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, value);
  }
  append(el, children);
  return el;
}

// Each page shown gets a number; a page's renderer draws only while it is still the page on
// screen, so a slow answer for a page the user already left cannot overwrite the new one.
let generation = 0;

export function newPage() {
  generation += 1;
  return generation;
}

export function isCurrent(page) { return page === generation; }

export function renderer(page) {
  return (...children) => (page === generation ? render(...children) : document.getElementById("main"));
}

export function render(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return main;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(lang() === "zh-CN" ? "zh-CN" : "en-GB", {
    dateStyle: "medium", timeStyle: "short",
  });
}

export function day(iso) {
  return new Date(iso).toLocaleDateString(lang() === "zh-CN" ? "zh-CN" : "en-GB", { dateStyle: "medium" });
}

export function money(amount, currency) {
  return new Intl.NumberFormat(lang() === "zh-CN" ? "zh-CN" : "en-GB", {
    style: "currency", currency: currency || "EUR",
  }).format(amount);
}

// An API error as a sentence: the message table's text for its reason, else the API's words.
export function errorText(error) {
  const key = `error.${error.reason}`;
  const known = t(key);
  if (known !== key) return known;
  return `${error.reason}${error.message && error.message !== error.reason ? `: ${error.message}` : ""}`;
}

export function showError(error, where) {
  const box = h("p", { class: "error", role: "alert" }, errorText(error));
  if (where) { where.replaceChildren(box); return box; }
  document.getElementById("alert").replaceChildren(box);
  return box;
}

export function clearAlert() { document.getElementById("alert").replaceChildren(); }

export function badge(kind, text) { return h("span", { class: `badge badge-${kind}` }, text); }

export function statusBadge(status) { return badge(status, t(`status.${status}`)); }

export function table(headers, rows, caption) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

export function field(label, control) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export function select(name, options, value) {
  return h("select", { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

export function loading() { return h("p", { class: "muted", "aria-busy": "true" }, t("loading")); }

export function link(path, text, attrs) { return h("a", { href: `#${path}`, ...(attrs || {}) }, text); }
