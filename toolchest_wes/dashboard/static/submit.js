// Submit: upload a workflow and its inputs (a form per named tool comes with a tool catalog).
import { call } from "./api.js";
import { html } from "./util.js";

function parseTags(text) {
  const tags = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(":");
    if (at < 1) throw new Error(`Tag "${line}" must be written key:value`);
    tags[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return tags;
}

export async function render(main) {
  const info = await call("/service-info");
  const types = Object.entries(info.workflow_type_versions || {}).flatMap(([type, v]) =>
    (v.workflow_type_version || []).map((version) => `${type} ${version}`));
  main.innerHTML = html`<h1>Submit a run</h1>
    <form class="form" id="submit">
      <label>Workflow file<input type="file" name="workflow" id="s-workflow" required accept=".cwl,.yml,.yaml,.json"></label>
      <label>Other files it needs (optional)<input type="file" name="attachments" id="s-attachments" multiple></label>
      <label>Workflow type<select name="type" id="s-type">${types.map((t) => html`<option>${t}</option>`)}</select></label>
      <label>Inputs (JSON object)<textarea name="params" id="s-params" spellcheck="false">{}</textarea></label>
      <label>Or an inputs file (JSON or YAML as JSON)<input type="file" name="paramsfile" id="s-paramsfile" accept=".json"></label>
      <label>Tags, one key:value per line<textarea name="tags" id="s-tags" rows="3"></textarea></label>
      <p id="s-error" class="error" role="alert"></p>
      <div><button type="submit">Submit</button></div>
    </form>`;
  const form = main.querySelector("#submit");
  const problem = main.querySelector("#s-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const workflow = form.workflow.files[0];
    let params;
    let tags;
    try {
      const text = form.paramsfile.files[0] ? await form.paramsfile.files[0].text() : form.params.value;
      params = JSON.parse(text || "{}");
      if (typeof params !== "object" || Array.isArray(params) || params === null) throw new Error("the inputs must be a JSON object");
      tags = parseTags(form.tags.value);
    } catch (error) {
      problem.textContent = `Cannot submit: ${error.message}`;
      return;
    }
    const [type, version] = form.type.value.split(" ");
    const body = new FormData();
    body.set("workflow_type", type);
    body.set("workflow_type_version", version);
    body.set("workflow_url", workflow.name);
    body.set("workflow_params", JSON.stringify(params));
    body.set("tags", JSON.stringify(tags));
    body.append("workflow_attachment", workflow, workflow.name);
    for (const file of form.attachments.files) body.append("workflow_attachment", file, file.name);
    try {
      const { run_id: runId } = await call("/runs", { method: "POST", body });
      location.hash = `#/runs/${encodeURIComponent(runId)}`;
    } catch (error) {
      if (error.status !== 401) problem.textContent = `The server refused the run: ${error.message}`;
    }
  });
}
