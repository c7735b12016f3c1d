// The runs list: newest first, paged with the API's page tokens, filtered by state and tag on
// the server and by text in the page; states and counts follow live by polling.
import { ACTIVE, ENDED, GROUPS, call } from "./api.js";
import { duration, esc, every, html, raw, stateBadge, tagList, when } from "./util.js";

const PAGE_SIZE = 20;
const POLL_MS = 2000;
// What a run's record says of its request never changes: read once per run id.
const details = new Map();

const option = (state, selected, label = state) => `<option value="${state}"${state === selected ? " selected" : ""}>${label}</option>`;

export function render(main, params) {
  const filters = { state: params.state || "", tag: params.tag || "", q: params.q || "" };
  const tokens = [""];
  let page = 0;
  let runs = [];
  let next = "";

  main.innerHTML = html`<h1>Runs</h1>
    <ul class="counts" id="counts" aria-label="Runs on this server per state"></ul>
    <form class="filters" id="filters" role="search" aria-label="Filter runs">
      <label>State
        <select name="state" id="f-state">
          <option value="">All states</option>
          ${raw(`<optgroup label="Groups">${GROUPS.map(([g, label]) => option(g, filters.state, label)).join("")}</optgroup>`)}
          ${raw(`<optgroup label="Active">${ACTIVE.map((s) => option(s, filters.state)).join("")}</optgroup>`)}
          ${raw(`<optgroup label="Ended">${ENDED.map((s) => option(s, filters.state)).join("")}</optgroup>`)}
        </select></label>
      <label>Tag (key:value)<input name="tag" id="f-tag" value="${filters.tag}" placeholder="project:demo"></label>
      <label>Text in this page<input name="q" id="f-q" type="search" value="${filters.q}"></label>
      <button type="submit">Apply</button>
    </form>
    <div class="table-wrap"><table>
      <caption class="muted" id="caption">Newest first</caption>
      <thead><tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Name / workflow</th>
        <th scope="col" class="hide-narrow">Tags</th><th scope="col">Submitted</th><th scope="col" class="num">Duration</th></tr></thead>
      <tbody id="rows"><tr><td colspan="6">Loading…</td></tr></tbody>
    </table></div>
    <div class="pager">
      <button type="button" id="newer">Newer</button>
      <span id="page-no" aria-live="polite">Page 1</span>
      <button type="button" id="older">Older</button>
    </div>`;

  const rows = main.querySelector("#rows");
  const form = main.querySelector("#filters");

  function matches(run) {
    if (!filters.q) return true;
    const d = details.get(run.run_id) || {};
    const text = [run.run_id, run.state, d.name, d.workflow, ...Object.entries(run.tags || {}).map(([k, v]) => `${k}:${v}`)];
    return text.join(" ").toLowerCase().includes(filters.q.toLowerCase());
  }

  function row(run) {
    const d = details.get(run.run_id);
    const path = d && d.workflow !== d.name ? html`<br><span class="muted mono">${d.workflow}</span>` : "";
    const name = d ? html`${d.name}${path}` : "…";
    return html`<tr data-run="${run.run_id}">
      <td class="mono"><a href="#/runs/${encodeURIComponent(run.run_id)}">${run.run_id}</a></td>
      <td>${stateBadge(run.state)}</td><td>${name}</td><td class="hide-narrow">${tagList(run.tags)}</td>
      <td>${d ? when(d.submitted) : "…"}</td><td class="num">${duration(run.start_time, run.end_time)}</td></tr>`;
  }

  let drawn = "";
  function draw() {
    const shown = runs.filter(matches);
    const body = shown.length ? shown.map(row).join("") : '<tr><td colspan="6">No runs.</td></tr>';
    // Unchanged rows are left alone, so that polling does not take the keyboard focus away.
    if (body !== drawn) rows.innerHTML = drawn = body;
    main.querySelector("#newer").disabled = page === 0;
    main.querySelector("#older").disabled = !next;
    main.querySelector("#page-no").textContent = `Page ${page + 1}`;
  }

  async function learn(missing) {
    await Promise.all(missing.map(async (run) => {
      let log;
      try {
        log = await call(`/runs/${encodeURIComponent(run.run_id)}`);
      } catch (error) {
        // Deleted since the listing: the next listing drops it.
        if (error.status === 404) return;
        throw error;
      }
      const workflow = log.request?.workflow_url || "";
      details.set(run.run_id, {
        name: run.tags?.name || log.run_log?.name || workflow.split("/").pop(),
        workflow,
        submitted: log.submitted_time || log.run_log?.start_time,
      });
    }));
    draw();
  }

  let latest = 0;
  async function load() {
    // A slow answer to an earlier listing (other filters, another page) must not win.
    const mine = ++latest;
    const query = new URLSearchParams({ page_size: PAGE_SIZE });
    if (tokens[page]) query.set("page_token", tokens[page]);
    if (filters.state) query.set("state", filters.state);
    if (filters.tag) query.set("tag", filters.tag);
    const listing = await call(`/runs?${query}`);
    if (mine !== latest) return;
    runs = listing.runs;
    next = listing.next_page_token;
    draw();
    performance.mark("runs-rendered");
    const missing = runs.filter((r) => !details.has(r.run_id));
    if (missing.length) learn(missing).catch((error) => window.dispatchEvent(new CustomEvent("wes-error", { detail: error })));
  }

  async function counts() {
    const info = await call("/service-info");
    const entries = Object.entries(info.system_state_counts || {}).filter(([, n]) => n > 0);
    main.querySelector("#counts").innerHTML = entries.length
      ? entries.map(([s, n]) => `<li><button type="button" data-state="${esc(s)}" aria-label="Show ${esc(s)} runs (${n})"><span class="state s-${esc(s)}">${esc(s)}</span> ${n}</button></li>`).join("")
      : '<li class="muted">No runs yet.</li>';
  }

  function restart() {
    tokens.length = 1;
    page = 0;
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `#/runs${query.size ? `?${query}` : ""}`);
    load();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filters.state = form.state.value;
    filters.tag = form.tag.value.trim();
    filters.q = form.q.value.trim();
    restart();
  });
  form.state.addEventListener("change", () => form.requestSubmit());
  form.q.addEventListener("input", () => {
    filters.q = form.q.value.trim();
    draw();
  });
  main.querySelector("#counts").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-state]");
    if (!button) return;
    form.state.value = button.dataset.state;
    form.requestSubmit();
  });
  main.querySelector("#older").addEventListener("click", () => {
    tokens[page + 1] = next;
    page += 1;
    load();
  });
  main.querySelector("#newer").addEventListener("click", () => {
    page = Math.max(0, page - 1);
    load();
  });

  const stopRuns = every(POLL_MS, load);
  const stopCounts = every(POLL_MS * 2, counts);
  return () => {
    stopRuns();
    stopCounts();
  };
}
