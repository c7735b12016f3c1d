// Signing in with the server's OIDC issuer: the authorization code flow with PKCE (S256), as a
// public client. The server names the issuer, the client id and the scopes in service-info;
// endpoints it leaves unset come from the issuer's discovery document. The token endpoint is
// called from this page, so the issuer must allow CORS from the dashboard's origin.
import { BASE, token } from "./api.js";

const PENDING_KEY = "toolchest-wes-oidc";
let config;

/** The issuer's sign-in settings from service-info, or null when the server offers none. */
export async function loginConfig() {
  if (config === undefined) {
    // Public, and without the token: a refused token must not hide the way to get another.
    const response = await fetch(`${BASE}/service-info`, { headers: { Accept: "application/json" } });
    config = response.ok ? (await response.json()).toolchest_wes_oidc_login || null : null;
  }
  return config;
}

export const issuerHost = (login) => new URL(login.issuer).host;

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const randomString = () => base64url(crypto.getRandomValues(new Uint8Array(32)));

async function endpoints(login) {
  if (login.authorization_endpoint && login.token_endpoint) return login;
  const url = `${login.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`The issuer's discovery document (${url}) answered ${response.status}.`);
  const found = await response.json();
  return {
    authorization_endpoint: login.authorization_endpoint || found.authorization_endpoint,
    token_endpoint: login.token_endpoint || found.token_endpoint,
  };
}

// The page itself, without query or fragment: the redirect URI registered at the issuer.
const redirectUri = () => location.origin + location.pathname;

/** Leave for the issuer's sign-in page; `back` is the route to show on return. */
export async function startLogin(login, back) {
  const { authorization_endpoint: authorize, token_endpoint: tokenEndpoint } = await endpoints(login);
  const verifier = randomString();
  const state = randomString();
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const pending = { state, verifier, tokenEndpoint, redirectUri: redirectUri(), back };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(authorize);
  for (const [name, value] of Object.entries({
    response_type: "code",
    client_id: login.client_id,
    redirect_uri: pending.redirectUri,
    scope: login.scopes,
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  })) url.searchParams.set(name, value);
  location.assign(url.href);
}

/**
 * Finish a sign-in if the issuer has just sent the browser back here: check the state, trade
 * the code and the verifier for a token, keep the token as a pasted one is kept. Returns null
 * when this load is no return from the issuer, else the route to show; throws an Error with
 * a message for the user when the sign-in failed.
 */
export async function finishLogin() {
  const answer = new URLSearchParams(location.search);
  if (!answer.has("state") && !answer.has("code") && !answer.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY);
  // The code must not stay in the address bar, the history or a bookmark.
  history.replaceState(null, "", location.pathname + (pending?.back || "#/runs"));
  if (answer.has("error")) {
    const why = answer.get("error_description") || answer.get("error");
    throw new Error(`The identity provider did not sign you in: ${why}`);
  }
  if (!pending || answer.get("state") !== pending.state) {
    throw new Error("This sign-in answer does not belong to a sign-in started in this tab (its state differs). Sign in again.");
  }
  const login = await loginConfig();
  const response = await fetch(pending.tokenEndpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: answer.get("code") || "",
      redirect_uri: pending.redirectUri,
      client_id: login?.client_id || "",
      code_verifier: pending.verifier,
    }),
  }).catch(() => {
    throw new Error(`Could not reach the identity provider's token endpoint (${pending.tokenEndpoint}); it must allow CORS from ${location.origin}.`);
  });
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not JSON: the status says enough.
  }
  if (!response.ok) {
    const why = body.error_description || body.error || `${response.status} ${response.statusText}`;
    throw new Error(`The identity provider refused to issue a token: ${why}`);
  }
  const kind = login?.token || "access_token";
  if (!body[kind]) throw new Error(`The identity provider's answer holds no ${kind}.`);
  token.set(body[kind]);
  return pending.back || "#/runs";
}
