// Sign-in against the Cognito user pool (InitiateAuth USER_PASSWORD_AUTH), straight from the
// browser; the session (ID and refresh tokens) lives in sessionStorage, so it ends with the tab.
const KEY = "aftercare.session";
let config = null;

export function configure(value) { config = value; }

async function cognito(target, body) {
  const response = await fetch(config.cognito_endpoint, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityProviderService.${target}`,
    },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(answer.message || answer.Message || `sign-in failed (${response.status})`);
    error.reason = (answer.__type || "").split("#").pop() || "sign_in_failed";
    throw error;
  }
  return answer;
}

export function claims(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const text = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
  return JSON.parse(text);
}

function store(result, username, refresh) {
  const c = claims(result.IdToken);
  const groups = Array.isArray(c["cognito:groups"]) ? c["cognito:groups"] : [];
  const session = {
    username,
    idToken: result.IdToken,
    refreshToken: result.RefreshToken || refresh,
    expiresAt: c.exp * 1000,
    groups,
    customerId: c["custom:customer_id"] || null,
    engineerId: c["custom:engineer_id"] || null,
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export async function signIn(username, password) {
  const answer = await cognito("InitiateAuth", {
    AuthFlow: "USER_PASSWORD_AUTH",
    ClientId: config.client_id,
    AuthParameters: { USERNAME: username, PASSWORD: password },
  });
  if (!answer.AuthenticationResult) {
    const error = new Error(answer.ChallengeName || "challenge");
    error.reason = "challenge";
    throw error;
  }
  return store(answer.AuthenticationResult, username, null);
}

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}

export function signOut() { sessionStorage.removeItem(KEY); }

// A valid ID token, refreshed when it expires within a minute; null when signed out.
export async function idToken() {
  const current = session();
  if (!current) return null;
  if (current.expiresAt - 60_000 > Date.now()) return current.idToken;
  if (!current.refreshToken) { signOut(); return null; }
  try {
    const answer = await cognito("InitiateAuth", {
      AuthFlow: "REFRESH_TOKEN_AUTH",
      ClientId: config.client_id,
      AuthParameters: { REFRESH_TOKEN: current.refreshToken },
    });
    return store(answer.AuthenticationResult, current.username, current.refreshToken).idToken;
  } catch {
    signOut();
    return null;
  }
}

export function role(s) {
  const groups = (s && s.groups) || [];
  if (groups.includes("managers")) return "manager";
  if (groups.includes("engineers")) return "engineer";
  if (groups.includes("customers")) return "customer";
  return null;
}
