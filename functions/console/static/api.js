// The support API with the signed-in user's ID token. Errors carry the API's `reason`.
import { idToken } from "./auth.js";

let base = "";
export function configure(config) { base = config.api_base || ""; }

export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message || reason);
    this.status = status;
    this.reason = reason;
  }
}

export async function call(method, path, body, query) {
  const token = await idToken();
  if (!token) throw new ApiError(401, "signed_out", "");
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") params.set(k, v);
  const url = base + path + (params.toString() ? `?${params}` : "");
  const response = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let answer = null;
  try { answer = text ? JSON.parse(text) : null; } catch { answer = null; }
  if (!response.ok) {
    const reason = (answer && (answer.reason || answer.message)) || `http_${response.status}`;
    const detail = answer && answer.reason ? answer.message : "";
    throw new ApiError(response.status, reason, detail);
  }
  return answer;
}

export const get = (path, query) => call("GET", path, null, query);
export const post = (path, body) => call("POST", path, body || {});
