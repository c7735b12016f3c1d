// The dashboard's shell: hash routing between the pages, the token prompt (and the sign-in
// with the server's OIDC issuer, when it offers one), error notices.
import { ApiError, session, token } from "./api.js";
import { finishLogin, issuerHost, loginConfig, startLogin } from "./oidc.js";
import { html } from "./util.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const who = document.getElementById("who");
const pages = {
  runs: () => import("./runs.js"),
  run: () => import("./run.js"),
  submit: () => import("./submit.js"),
  service: () => import("./service.js"),
};
let leave = () => {};
let generation = 0;

function parse() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === "runs" && parts[1]) return { page: "run", params: { ...params, id: decodeURIComponent(parts[1]) } };
  return { page: pages[parts[0]] ? parts[0] : "runs", params };
}

export function showNotice(message) {
  notice.textContent = message;
  notice.hidden = !message;
}

function renderWho() {
  // Signing in before the first API call spares a refused request when auth is on.
  const signIn = session.auth === "off" ? "" : '<button type="button" id="signin">Sign in</button>';
  const markup = token.get() ? 'Signed in with a token <button type="button" id="signout">Sign out</button>' : signIn;
  if (who.innerHTML === markup) return;
  who.innerHTML = markup;
  document.getElementById("signin")?.addEventListener("click", () => askForToken(null));
  document.getElementById("signout")?.addEventListener("click", () => {
    token.clear();
    route();
  });
}

async function route() {
  leave();
  leave = () => {};
  showNotice("");
  renderWho();
  const mine = ++generation;
  const { page, params } = parse();
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === page || (page === "run" && link.dataset.nav === "runs");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const module = await pages[page]();
  if (mine !== generation) return;
  // Each page is drawn apart and shown only if it is still the one asked for, so a slow
  // page cannot overwrite the next one.
  const view = document.createElement("div");
  const stop = await module.render(view, params);
  if (mine !== generation) {
    if (stop) stop();
    return;
  }
  main.replaceChildren(view);
  leave = stop || (() => {});
  renderWho();
}

/** The sign-in page; `error`: the API's refusal, `failed`: why a sign-in with the issuer failed. */
function askForToken(error, failed = "") {
  leave();
  leave = () => {};
  const mine = ++generation;
  const refused = Boolean(error && token.get());
  token.clear();
  renderWho();
  const why = failed || (refused
    ? `The server refused this token: ${error.message}`
    : `${error ? "This server needs an API token." : "Enter your API token."} Ask the server's operator for one (toolchest-wes token create USER).`);
  main.innerHTML = html`<h1>Sign in</h1>
    <form class="login" id="login">
      <p id="login-why">${refused ? "Enter another token." : why}</p>
      <label for="token-input">API token</label>
      <input id="token-input" name="token" type="password" autocomplete="current-password" required aria-describedby="login-why">
      <button type="submit">Sign in</button>
    </form>`;
  if (refused || failed) showNotice(why);
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token.set(document.getElementById("token-input").value.trim());
    route();
  });
  document.getElementById("token-input").focus();
  offerIssuer(mine);
}

async function offerIssuer(mine) {
  const login = await loginConfig();
  const form = document.getElementById("login");
  if (!login || mine !== generation || !form) return;
  const button = Object.assign(document.createElement("button"), {
    type: "button",
    id: "oidc-signin",
    textContent: `Sign in with ${issuerHost(login)}`,
  });
  button.addEventListener("click", () => {
    button.disabled = true;
    startLogin(login, location.hash || "#/runs").catch((failure) => {
      button.disabled = false;
      showNotice(failure.message);
    });
  });
  form.append(button);
}

async function start() {
  let failed = "";
  try {
    await finishLogin();
  } catch (failure) {
    failed = failure.message;
  }
  session.auth = token.get() ? "on" : session.auth;
  if (failed) askForToken(null, failed);
  else route();
}

window.addEventListener("wes-auth", renderWho);
window.addEventListener("wes-unauthorized", (event) => askForToken(event.detail));
window.addEventListener("wes-error", (event) => {
  const error = event.detail;
  if (error instanceof ApiError && error.status === 401) return;
  showNotice(error instanceof ApiError ? `The server answered ${error.status}: ${error.message}` : String(error.message || error));
});
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  window.dispatchEvent(new CustomEvent("wes-error", { detail: event.reason }));
});
window.addEventListener("hashchange", () => {
  route();
  main.focus();
});
start();
