// One run: header and timeline, request, logs followed live, tasks, outputs, cancel/delete.
import { BASE, call, download, isActive, logAfter, token } from "./api.js";
import { duration, every, html, raw, size, stateBadge, tagList, when } from "./util.js";

const POLL_MS = 1500;
const MAX_LOG_CHARS = 2_000_000;

function tree(value) {
  if (value === null || typeof value !== "object") return html`<span class="mono">${JSON.stringify(value)}</span>`;
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) return html`<span class="mono">${Array.isArray(value) ? "[]" : "{}"}</span>`;
  return `<ul class="tree">${entries.map(([k, v]) => html`<li><span class="k">${k}</span>: ${raw(tree(v))}</li>`).join("")}</ul>`;
}

/** Appends what a log gained since the last look (Range requests) to a <pre>. */
class Follower {
  constructor(path, pre) {
    this.path = path;
    this.pre = pre;
    this.offset = 0;
    this.decoder = new TextDecoder();
  }

  async step() {
    const { bytes, start } = await logAfter(this.path, this.offset);
    if (start === 0 && this.offset > 0) {
      this.pre.textContent = "";
      this.decoder = new TextDecoder();
    }
    if (!bytes.length) return;
    const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    let text = this.pre.textContent + this.decoder.decode(bytes, { stream: true });
    // A very long log keeps only its end on the page, so that the tab stays responsive.
    if (text.length > MAX_LOG_CHARS) text = `[earlier lines not shown]\n${text.slice(-MAX_LOG_CHARS / 2)}`;
    this.pre.textContent = text;
    this.offset = start + bytes.length;
    if (atEnd) this.pre.scrollTop = this.pre.scrollHeight;
  }
}

export async function render(main, params) {
  const id = params.id;
  const path = `/runs/${encodeURIComponent(id)}`;
  let log = await call(path);
  main.innerHTML = html`<p><a href="#/runs">← All runs</a></p>
    <h1>Run <span class="mono">${id}</span> <span id="state"></span></h1>
    <ul class="timeline" id="timeline" aria-label="Timeline"></ul>
    <p id="system" class="muted"></p>
    <div class="actions">
      <button type="button" class="danger" id="cancel">Cancel run</button>
      <button type="button" class="danger" id="delete">Delete run</button>
    </div>
    <section aria-labelledby="h-request"><h2 id="h-request">Request</h2>
      <dl class="facts">
        <dt>Workflow</dt><dd class="mono">${log.request?.workflow_url}</dd>
        <dt>Type</dt><dd>${log.request?.workflow_type} ${log.request?.workflow_type_version}</dd>
        <dt>Tags</dt><dd>${tagList(log.request?.tags, { all: true })}</dd>
        <dt>Engine parameters</dt><dd>${raw(tree(log.request?.workflow_engine_parameters || {}))}</dd>
      </dl>
      <h3>Inputs</h3>${raw(tree(log.request?.workflow_params || {}))}
    </section>
    <section aria-labelledby="h-logs"><h2 id="h-logs">Logs</h2>
      <h3 id="h-stdout">stdout</h3><pre class="log" id="stdout" tabindex="0" aria-labelledby="h-stdout"></pre>
      <h3 id="h-stderr">stderr</h3><pre class="log" id="stderr" tabindex="0" aria-labelledby="h-stderr"></pre>
    </section>
    <section aria-labelledby="h-tasks"><h2 id="h-tasks">Tasks</h2>
      <div class="table-wrap"><table><thead><tr><th scope="col">Task</th><th scope="col">Started</th><th scope="col">Ended</th>
        <th scope="col" class="num">Exit code</th><th scope="col">Logs</th></tr></thead><tbody id="tasks"></tbody></table></div>
      <div id="task-logs"></div>
    </section>
    <section aria-labelledby="h-outputs"><h2 id="h-outputs">Outputs</h2><div id="outputs"><p class="muted">Outputs are listed when the run ends.</p></div></section>`;

  const $ = (selector) => main.querySelector(selector);
  const followers = [new Follower(`${path}/stdout`, $("#stdout")), new Follower(`${path}/stderr`, $("#stderr"))];
  let taskFollowers = [];

  function header() {
    const l = log.run_log || {};
    $("#state").innerHTML = stateBadge(log.state).__raw;
    $("#timeline").innerHTML = html`<li><span>Queued</span>${when(log.submitted_time)}</li>
      <li><span>Started</span>${when(l.start_time)}</li><li><span>Ended</span>${when(l.end_time)}</li>
      <li><span>Duration</span>${duration(l.start_time, l.end_time)}</li>
      <li><span>Exit code</span>${l.exit_code ?? "–"}</li>`;
    $("#system").textContent = (l.system_logs || []).join("\n");
    $("#cancel").disabled = !isActive(log.state) || log.state === "CANCELING";
    $("#delete").disabled = isActive(log.state);
  }

  let drawnTasks = "";
  async function tasks() {
    const listing = await call(`${path}/tasks?page_size=100`);
    const body = listing.task_logs.map((t) => html`<tr><td class="mono">${t.name}</td><td>${when(t.start_time)}</td>
      <td>${when(t.end_time)}</td><td class="num">${t.exit_code ?? "–"}</td>
      <td><button type="button" data-task="${t.id}" aria-label="Show the logs of task ${t.name}">Show logs</button></td></tr>`).join("");
    const next = body || '<tr><td colspan="5" class="muted">No tasks yet.</td></tr>';
    // Redrawn only when it changed, so that polling does not take the keyboard focus away.
    if (next !== drawnTasks) $("#tasks").innerHTML = drawnTasks = next;
  }

  async function outputs() {
    const listing = await call(`${path}/outputs`);
    const box = $("#outputs");
    if (!listing.complete) {
      box.innerHTML = '<p class="muted">Outputs are listed when the run ends.</p>';
      return;
    }
    if (listing.outputs_expired) {
      box.innerHTML = html`<p>The outputs have expired${listing.outputs_expire_at ? ` (${when(listing.outputs_expire_at)})` : ""}.</p>`;
      return;
    }
    const expiry = listing.outputs_expire_at ? html`Kept until ${when(listing.outputs_expire_at)}. ` : "Kept until the run is deleted. ";
    const rows = listing.files.map((f) => html`<tr><td class="mono">${f.path}</td><td class="num">${size(f.size)}</td>
      <td><a href="${BASE}${path}/outputs/${f.path.split("/").map(encodeURIComponent).join("/")}" data-file="${f.path.split("/").pop()}" download>Download<span class="visually-hidden"> ${f.path}</span></a></td></tr>`).join("");
    box.innerHTML = html`<p>${expiry}${listing.files.length} files, ${size(listing.total_size)}.
      ${listing.files.length ? raw(html`<a href="${BASE}${path}/outputs?archive=zip" data-file="${id}-outputs.zip" download>Download all (zip)</a>`) : ""}</p>
      <div class="table-wrap"><table><thead><tr><th scope="col">Path</th><th scope="col" class="num">Size</th><th scope="col">File</th></tr></thead>
      <tbody>${raw(rows || '<tr><td colspan="3" class="muted">This run has no output files.</td></tr>')}</tbody></table></div>`;
  }

  let ended = false;
  async function tick() {
    log = await call(path);
    header();
    await Promise.all([tasks(), ...followers.map((f) => f.step()), ...taskFollowers.map((f) => f.step())]);
    if (isActive(log.state)) return true;
    if (!ended) {
      ended = true;
      await outputs();
    }
    return false;
  }

  $("#outputs").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-file]");
    // A link cannot carry the Authorization header: with a token, fetch the file first.
    if (!link || !token.get()) return;
    event.preventDefault();
    download(link.getAttribute("href").slice(BASE.length), link.dataset.file).catch((error) =>
      window.dispatchEvent(new CustomEvent("wes-error", { detail: error })));
  });
  $("#tasks").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-task]");
    if (!button) return;
    const task = `${path}/tasks/${encodeURIComponent(button.dataset.task)}`;
    $("#task-logs").innerHTML = html`<h3 id="h-task">Task ${button.dataset.task}</h3>
      <h4 id="h-tout">stdout</h4><pre class="log" id="task-stdout" tabindex="0" aria-labelledby="h-tout"></pre>
      <h4 id="h-terr">stderr</h4><pre class="log" id="task-stderr" tabindex="0" aria-labelledby="h-terr"></pre>`;
    taskFollowers = [new Follower(`${task}/stdout`, $("#task-stdout")), new Follower(`${task}/stderr`, $("#task-stderr"))];
    Promise.all(taskFollowers.map((f) => f.step())).catch((error) => window.dispatchEvent(new CustomEvent("wes-error", { detail: error })));
  });
  $("#cancel").addEventListener("click", async () => {
    if (!window.confirm(`Cancel run ${id}?`)) return;
    await call(`${path}/cancel`, { method: "POST" });
  });
  $("#delete").addEventListener("click", async () => {
    if (!window.confirm(`Delete run ${id} with its outputs and logs? This cannot be undone.`)) return;
    await call(path, { method: "DELETE" });
    location.hash = "#/runs";
  });

  header();
  return every(POLL_MS, tick);
}
