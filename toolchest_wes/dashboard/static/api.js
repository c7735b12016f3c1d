// The WES API as the dashboard uses it: every call carries the user's bearer token, kept for
// this browser tab only (sessionStorage), so the server's own checks decide what is shown.
export const BASE = "/ga4gh/wes/v1";
const TOKEN_KEY = "toolchest-wes-token";

export const ACTIVE = ["QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "CANCELING"];
export const ENDED = ["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED", "UNKNOWN"];
export const isActive = (state) => ACTIVE.includes(state);
// The state groups the server's state= filter takes (models.STATE_GROUPS), with their labels;
// the server works out which states each stands for.
export const GROUPS = [["active", "Active"], ["finished", "Finished"], ["failed", "Failed"], ["canceled", "Canceled"]];

export class ApiError extends Error {
  constructor(status, msg) {
    super(msg);
    this.status = status;
  }
}

/** What the API has shown of its authentication: "unknown", "on" or "off". */
export const session = { auth: "unknown" };

function learnAuth(mode) {
  if (session.auth === mode) return;
  session.auth = mode;
  window.dispatchEvent(new CustomEvent("wes-auth"));
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function headers(extra = {}) {
  const t = token.get();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function failure(response) {
  let msg = response.statusText;
  try {
    msg = (await response.json()).msg || msg;
  } catch {
    // Not a WES error document (a proxy's page, say): the status text says enough.
  }
  const error = new ApiError(response.status, msg);
  if (response.status === 401) {
    learnAuth("on");
    window.dispatchEvent(new CustomEvent("wes-unauthorized", { detail: error }));
  }
  return error;
}

/** GET/POST/DELETE a JSON endpoint of the API; throws ApiError with the server's msg. */
export async function call(path, { method = "GET", body } = {}) {
  const response = await fetch(BASE + path, { method, body, headers: headers({ Accept: "application/json" }) });
  if (!response.ok) throw await failure(response);
  if (path.startsWith("/runs")) learnAuth(token.get() ? "on" : "off");
  return response.json();
}

/**
 * The bytes of a log after the first `offset`, as text. The request overlaps the known text
 * by one byte, so that a log which has not grown answers 206 rather than 416 (which the
 * browser would report as a failed request).
 */
export async function logAfter(path, offset) {
  const extra = offset > 0 ? { Range: `bytes=${offset - 1}-` } : {};
  const response = await fetch(BASE + path, { headers: headers(extra), cache: "no-store" });
  if (!response.ok) throw await failure(response);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status === 206) return { bytes: bytes.subarray(1), start: offset };
  return { bytes, start: 0 };
}

/** Save an API file: a plain link without a token, else fetched with the token first. */
export async function download(path, filename) {
  const response = await fetch(BASE + path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
