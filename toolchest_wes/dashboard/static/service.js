// What service-info says about this server, and how it authenticates.
import { BASE, call, session, token } from "./api.js";
import { html, raw } from "./util.js";

const KNOWN = new Set(["id", "name", "type", "description", "organization", "contactUrl", "documentationUrl",
  "environment", "version", "workflow_type_versions", "supported_wes_versions", "supported_filesystem_protocols",
  "workflow_engine_versions", "default_workflow_engine_parameters", "system_state_counts", "auth_instructions_url",
  "tags", "workers", "createdAt", "updatedAt"]);

const AUTH = {
  on: "On: requests carry an API token (Bearer).",
  off: "Off: the API answers without a token.",
  unknown: "Not known yet (open the runs page).",
};

export async function render(main) {
  const info = await call("/service-info");
  const engines = Object.entries(info.workflow_engine_versions || {}).map(([name, v]) =>
    html`<tr><td>${name}</td><td>${(v.workflow_engine_version || []).join(", ")}</td></tr>`).join("");
  const types = Object.entries(info.workflow_type_versions || {}).map(([name, v]) =>
    html`<tr><td>${name}</td><td>${(v.workflow_type_version || []).join(", ")}</td></tr>`).join("");
  const params = (info.default_workflow_engine_parameters || []).map((p) =>
    html`<tr><td class="mono">${p.name}</td><td>${p.type}</td><td class="mono">${p.default_value}</td></tr>`).join("");
  const extra = Object.entries(info).filter(([k]) => !KNOWN.has(k));
  main.innerHTML = html`<h1>Service</h1>
    <dl class="facts">
      <dt>Name</dt><dd>${info.name} ${info.version}</dd>
      <dt>Description</dt><dd>${info.description}</dd>
      <dt>WES versions</dt><dd>${(info.supported_wes_versions || []).join(", ")}</dd>
      <dt>Input URL schemes</dt><dd>${(info.supported_filesystem_protocols || []).join(", ")}</dd>
      <dt>Authentication</dt><dd>${AUTH[token.get() ? "on" : session.auth]}
        ${info.auth_instructions_url && session.auth !== "off" ? raw(html` <a href="${info.auth_instructions_url}">How to get a token</a>`) : ""}</dd>
      <dt>API documentation</dt><dd><a href="${BASE}/ui/">${BASE}/ui/</a></dd>
      ${info.workers ? raw(html`<dt>Workers</dt><dd>${info.workers.live} live</dd>`) : ""}
    </dl>
    <h2>Workflow types</h2>
    <div class="table-wrap"><table><thead><tr><th scope="col">Type</th><th scope="col">Versions</th></tr></thead><tbody>${raw(types)}</tbody></table></div>
    <h2>Engines</h2>
    <div class="table-wrap"><table><thead><tr><th scope="col">Engine</th><th scope="col">Versions</th></tr></thead><tbody>${raw(engines)}</tbody></table></div>
    <h2>Engine parameters and limits</h2>
    <div class="table-wrap"><table><thead><tr><th scope="col">Parameter</th><th scope="col">Type</th><th scope="col">Default</th></tr></thead><tbody>${raw(params || '<tr><td colspan="3">None</td></tr>')}</tbody></table></div>
    ${extra.map(([k, v]) => raw(html`<h2>${k}</h2><pre class="mono">${JSON.stringify(v, null, 2)}</pre>`))}`;
}
