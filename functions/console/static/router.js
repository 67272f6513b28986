// A tiny hash router: "#/tickets/T-1?status=open" -> route "/tickets/:id" with params and query.
const routes = [];

export function route(pattern, view) {
  const names = [];
  const regex = new RegExp(
    "^" + pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; }) + "$",
  );
  routes.push({ pattern, regex, names, view });
}

export function current() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  for (const r of routes) {
    const found = r.regex.exec(path);
    if (found) {
      const params = {};
      r.names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
      return { route: r, params, query: new URLSearchParams(query), path };
    }
  }
  return { route: null, params: {}, query: new URLSearchParams(query), path };
}

export function go(path) {
  if (location.hash === "#" + path) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = path;
}
