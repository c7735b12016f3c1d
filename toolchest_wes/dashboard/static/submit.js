// Submit: upload a workflow and its inputs, or run a named tool of the server's catalog (TRS)
// from a form made from the tool's inputs.
import { call } from "./api.js";
import { html, raw } from "./util.js";

const TRS = "/ga4gh/trs/v2";

function parseTags(text) {
  const tags = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(":");
    if (at < 1) throw new Error(`Tag "${line}" must be written key:value`);
    tags[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return tags;
}

/** The workflow type a file's name tells: .wdl is WDL, a Snakefile or .smk Snakemake. */
function typeOfFile(name) {
  const lower = name.toLowerCase();
  if (lower.endsWith(".wdl")) return "WDL";
  if (name === "Snakefile" || lower.endsWith(".smk")) return "SMK";
  return "CWL";
}

/** The engines that run `type`, by service-info: the default one first. */
function enginesFor(info, type) {
  const engines = info.toolchest_wes_engines;
  if (!engines) return Object.keys(info.workflow_engine_versions || {});
  const names = Object.keys(engines).filter((name) => type in (engines[name].workflow_types || {}));
  return names.sort((a, b) => (engines[b].default_for || []).includes(type) - (engines[a].default_for || []).includes(type));
}

export async function render(main) {
  const info = await call("/service-info");
  const types = Object.entries(info.workflow_type_versions || {}).flatMap(([type, v]) =>
    (v.workflow_type_version || []).map((version) => `${type} ${version}`));
  main.innerHTML = html`<h1>Submit a run</h1>
    <fieldset class="form" id="s-mode"><legend>What to run</legend>
      <label class="check"><input type="radio" name="mode" value="upload" id="s-mode-upload" checked> Upload a workflow</label>
      <label class="check"><input type="radio" name="mode" value="tool" id="s-mode-tool"> Named tool</label>
    </fieldset>
    <form class="form" id="tool-submit" hidden novalidate></form>
    <form class="form" id="submit">
      <label>Workflow file (CWL, WDL or a Snakefile)<input type="file" name="workflow" id="s-workflow" required></label>
      <label>Other files it needs (optional)<input type="file" name="attachments" id="s-attachments" multiple></label>
      <label>Workflow type<select name="type" id="s-type">${types.map((t) => html`<option>${t}</option>`)}</select></label>
      <label>Engine<select name="engine" id="s-engine"></select></label>
      <label>Inputs (JSON object)<textarea name="params" id="s-params" spellcheck="false">{}</textarea></label>
      <label>Or an inputs file (JSON or YAML as JSON)<input type="file" name="paramsfile" id="s-paramsfile" accept=".json"></label>
      <label>Tags, one key:value per line<textarea name="tags" id="s-tags" rows="3"></textarea></label>
      <p id="s-error" class="error" role="alert"></p>
      <div><button type="submit">Submit</button></div>
    </form>`;
  const form = main.querySelector("#submit");
  const toolForm = main.querySelector("#tool-submit");
  for (const radio of main.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => {
      const tool = radio.value === "tool" && radio.checked;
      form.hidden = tool;
      toolForm.hidden = !tool;
      if (tool && !toolForm.dataset.ready) {
        toolForm.dataset.ready = "1";
        renderToolForm(toolForm).catch((error) => {
          toolForm.innerHTML = html`<p class="error" role="alert">Cannot read the catalog: ${error.message}</p>`;
        });
      }
    });
  }
  const showEngines = () => {
    const engines = enginesFor(info, form.type.value.split(" ")[0]);
    form.engine.innerHTML = engines.map((name, i) =>
      html`<option value="${name}">${name}${i === 0 && engines.length > 1 ? " (default)" : ""}</option>`).join("");
  };
  form.type.addEventListener("change", showEngines);
  form.workflow.addEventListener("change", async () => {
    const file = form.workflow.files[0];
    if (!file) return;
    const type = typeOfFile(file.name);
    // A WDL file declares its version on a line of its own, before any code.
    const declared = type === "WDL" ? (/^\s*version\s+(\S+)/m.exec(await file.text()) || [])[1] : undefined;
    const offered = types.filter((t) => t.split(" ")[0] === type);
    const pick = offered.find((t) => t === `${type} ${declared}`) || offered[0];
    if (pick) {
      form.type.value = pick;
      showEngines();
    }
  });
  showEngines();
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
    if (form.engine.value) body.set("workflow_engine", form.engine.value);
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

/** GET a public TRS or dashboard JSON document (no token needed). */
async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.json();
}

/** Every version of every catalog tool, as [{tool, version}], newest version first per tool. */
async function catalogChoices() {
  const tools = await getJson(`${TRS}/tools`);
  return tools.flatMap((tool) =>
    [...(tool.versions || [])].reverse().map((version) => ({ tool, version })));
}

async function renderToolForm(toolForm) {
  const choices = await catalogChoices();
  if (!choices.length) {
    toolForm.innerHTML = html`<p>The server's catalog has no tools.</p>`;
    return;
  }
  toolForm.innerHTML = html`
    <label>Tool<select id="t-tool" name="tool">${choices.map(
      ({ tool, version }, i) => html`<option value="${i}">${tool.name || tool.id} ${version.name || version.id}</option>`,
    )}</select></label>
    <p id="t-description"></p>
    <fieldset id="t-inputs" class="form"><legend>Inputs</legend></fieldset>
    <label>Tags, one key:value per line<textarea name="tags" id="t-tags" rows="3"></textarea></label>
    <p id="t-error" class="error" role="alert"></p>
    <div><button type="submit">Run the tool</button></div>`;
  const select = toolForm.querySelector("#t-tool");
  const problem = toolForm.querySelector("#t-error");
  let current = null;
  const choose = async () => {
    const { tool, version } = choices[Number(select.value)];
    problem.textContent = "";
    toolForm.querySelector("#t-description").textContent = tool.description || "";
    const path = `/dashboard/tools/${encodeURIComponent(tool.id)}/${encodeURIComponent(version.id)}/inputs`;
    const inputs = await getJson(path);
    current = { tool, version, inputs };
    toolForm.querySelector("#t-inputs").innerHTML = html`<legend>Inputs</legend>${
      inputs.length ? inputs.map(inputField) : html`<p>This tool takes no inputs.</p>`}`;
  };
  select.addEventListener("change", () => {
    choose().catch((error) => {
      problem.textContent = `Cannot read the tool's inputs: ${error.message}`;
    });
  });
  await choose();
  toolForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    if (!current) return;
    let body;
    try {
      body = toolRequest(toolForm, current);
    } catch (error) {
      problem.textContent = `Cannot submit: ${error.message}`;
      return;
    }
    try {
      const { run_id: runId } = await call("/runs", { method: "POST", body });
      location.hash = `#/runs/${encodeURIComponent(runId)}`;
    } catch (error) {
      if (error.status !== 401) problem.textContent = `The server refused the run: ${error.message}`;
    }
  });
}

const fieldId = (input) => `t-in-${input.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;

/** One labelled field for a tool input, by its kind; its doc is the field's description. */
function inputField(input) {
  const id = fieldId(input);
  const help = input.doc ? html`<small class="help" id="${id}-help">${input.doc}</small>` : "";
  const attrs = raw(` id="${id}"${input.doc ? ` aria-describedby="${id}-help"` : ""}`);
  const title = `${input.label || input.name}${input.optional ? " (optional)" : ""}`;
  const value = input.default === undefined || input.default === null ? "" : input.default;
  let control;
  switch (input.kind) {
    case "boolean":
      return html`<label class="check"><input type="checkbox"${attrs}${value === true ? raw(" checked") : ""}> ${title}</label>${help}`;
    case "enum":
      control = html`<select${attrs}>${input.optional ? html`<option value=""></option>` : ""}${input.symbols.map(
        (s) => html`<option${s === value ? raw(" selected") : ""}>${s}</option>`)}</select>`;
      break;
    case "File":
    case "File[]":
      control = html`<input type="file"${attrs}${input.kind === "File[]" ? raw(" multiple") : ""}>`;
      break;
    case "int":
    case "float":
      control = html`<input type="text"${attrs} value="${value}" inputmode="${input.kind === "int" ? "numeric" : "decimal"}">`;
      break;
    case "string":
      control = html`<input type="text"${attrs} value="${value}">`;
      break;
    default:
      control = html`<textarea${attrs} spellcheck="false">${value === "" ? "" : JSON.stringify(value)}</textarea>`;
  }
  const kind = { json: "JSON", "File[]": "one or more files", File: "a file" }[input.kind] || input.kind;
  return html`<label>${title} (${kind})${control}${help}</label>`;
}

/** The tool's value of one field: undefined when left empty; throws naming the input. */
function fieldValue(input, element, files) {
  const wrong = (expected, text) => new Error(`input "${input.name}": expected ${expected}, got "${text}"`);
  if (input.kind === "boolean") return element.checked;
  if (input.kind === "File" || input.kind === "File[]") {
    const picked = [...element.files];
    if (!picked.length) return undefined;
    files.push(...picked);
    const objects = picked.map((file) => ({ class: "File", location: file.name }));
    return input.kind === "File" ? objects[0] : objects;
  }
  const text = element.value.trim();
  if (text === "") return undefined;
  if (input.kind === "int") {
    if (!/^[+-]?\d+$/.test(text)) throw wrong("an integer", text);
    return Number(text);
  }
  if (input.kind === "float") {
    const number = Number(text);
    if (!Number.isFinite(number)) throw wrong("a number", text);
    return number;
  }
  if (input.kind === "json") {
    try {
      return JSON.parse(text);
    } catch {
      throw wrong("JSON", text.slice(0, 40));
    }
  }
  return element.value; // a string or an enum symbol, as written
}

/** The WES request of a named tool run: trs:// URL, inputs, files as attachments. */
function toolRequest(toolForm, { tool, version, inputs }) {
  const params = {};
  const files = [];
  const missing = [];
  for (const input of inputs) {
    const value = fieldValue(input, toolForm.querySelector(`#${fieldId(input)}`), files);
    if (value !== undefined) params[input.name] = value;
    else if (!input.optional) missing.push(input.name);
  }
  if (missing.length) {
    const which = missing.map((n) => `"${n}"`).join(", ");
    throw new Error(missing.length === 1 ? `input ${which} is required` : `inputs ${which} are required`);
  }
  const names = files.map((f) => f.name);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice) throw new Error(`two files are named "${twice}"; each attachment needs its own name`);
  const kind = (version.descriptor_type || ["CWL"])[0];
  const kindVersion = ((version.descriptor_type_version || {})[kind] || ["v1.2"])[0];
  const body = new FormData();
  body.set("workflow_type", kind);
  body.set("workflow_type_version", kindVersion);
  body.set("workflow_url", `trs://${location.host}/${encodeURIComponent(tool.id)}/${encodeURIComponent(version.id)}`);
  body.set("workflow_params", JSON.stringify(params));
  body.set("tags", JSON.stringify(parseTags(toolForm.tags.value)));
  for (const file of files) body.append("workflow_attachment", file, file.name);
  return body;
}
