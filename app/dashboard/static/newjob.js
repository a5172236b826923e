// A new job: upload a seed file (a refused file shows the API's message with its line),
// then a form built from the chosen kind's parameter schema (GET /kinds) with this
// service's defaults filled in. Only the parameters that differ from the defaults are sent.
// The essentials come first (kind, seeds, how many examples); the rest is grouped and folded,
// each label in words with the setting's name beside it. Kinds the service makes by itself
// (a dataset's build, a version's hand-off) are not offered: a dataset page builds.
import { html, useEffect, useState } from "./preact-htm.module.js";
import { go } from "./util.js";
import { errorText } from "./jobs.js";

// the schema of one parameter, with `null` allowed when it is an anyOf [X, null]
function fieldType(schema) {
  if (schema.anyOf) {
    const real = schema.anyOf.filter((s) => s.type !== "null");
    const nullable = real.length < schema.anyOf.length;
    if (real.length === 1) return { ...real[0], nullable, description: schema.description, title: schema.title };
    return { type: "json", nullable, description: schema.description, title: schema.title };
  }
  return schema;
}

function kindOfInput(t) {
  if (t.enum) return "enum";
  if (t.type === "boolean") return "boolean";
  if (t.type === "integer" || t.type === "number") return "number";
  if (t.type === "string") return "string";
  return "json";
}

function toText(value, input) {
  if (value === null || value === undefined) return "";
  if (input === "json") return JSON.stringify(value);
  return String(value);
}

// the form's text back to a JSON value; throws with a message for the field
function fromText(text, t, input) {
  if (input === "boolean") return text;
  if (text.trim() === "") {
    if (t.nullable) return null;
    if (input === "string") return "";
    throw new Error("a value is required");
  }
  if (input === "number") {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new Error("not a number");
    if (t.type === "integer" && !Number.isInteger(n)) throw new Error("a whole number is expected");
    return n;
  }
  if (input === "json") {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error("not valid JSON");
    }
  }
  return text;
}

// made by the service itself (Build now on a dataset page; a new version), never from this form
const INTERNAL = new Set(["dataset_build", "version_handoff"]);
// what a new user sets first, by kind; everything else is folded into GROUPS
const ESSENTIALS = { self_instruct: ["target"], evol_instruct: ["rounds", "max_pool"], score: ["judge_model", "aspects", "only_accepted"],
  sft: ["base_model", "method", "epochs", "max_steps", "dataset", "dataset_version"] };
const GROUPS = [
  ["sampling", "Generation: sampling and prompts", /^(temperature|top_p|presence_penalty|frequency_penalty|max_tokens|stop_|response_|instance_|classify_max_tokens|max_instances|seed$|prompt_|judge_max_tokens|judge_unparseable|operations|max_pool|rounds)/],
  ["filters", "Filters: what is kept", /^(min_words|max_words|blacklist|rouge_l|similar_top_k|mean_similarity|near_duplicate|dedup|max_parent|sorry)/],
  ["budget", "Budget and cost", /^(max_total_tokens|price_|gpus$|max_cost)/],
  ["judge", "Scoring with a judge", /^(score_with_judge|score_aspects)/],
  ["decontamination", "Decontamination against benchmarks", /^decontaminate/],
  ["other", "Other settings", /./],
];
const WORDS = { target: "Curated examples to make", max_tokens: "Longest generation (tokens)", seed: "Random seed",
  temperature: "Sampling temperature", top_p: "Nucleus sampling (top p)", rounds: "Evolution rounds", max_pool: "Instructions to evolve",
  rouge_l_threshold: "Too similar from ROUGE-L", near_duplicate_threshold: "Near duplicate from Jaccard", max_total_tokens: "Token budget",
  max_cost: "Cost budget", price_per_million_tokens: "Price per million tokens", price_per_gpu_hour: "Price per GPU-hour",
  judge_model: "Judge model", base_model: "Base model", epochs: "Epochs", max_steps: "Training steps (a cap)",
  score_with_judge: "Score the kept rows with a judge", min_words: "Fewest words in an instruction", max_words: "Most words in an instruction" };
// `name` in a description from the API shown as code, not with its backticks
const prose = (text) => String(text || "").split(/`([^`]+)`/).map((part, i) => (i % 2 ? html`<code key=${i}>${part}</code>` : part));
export const words = (name) => WORDS[name] || (name.charAt(0).toUpperCase() + name.slice(1)).replace(/_/g, " ");

function ParamField({ name, schema, value, error, onChange }) {
  const t = fieldType(schema);
  const input = kindOfInput(t);
  const id = "param-" + name;
  let control;
  if (input === "boolean") control = html`<input id=${id} type="checkbox" checked=${value} onChange=${(e) => onChange(e.target.checked)} />`;
  else if (input === "enum") control = html`<select id=${id} value=${value} onChange=${(e) => onChange(e.target.value)}>
    ${t.nullable && html`<option value="">(none)</option>`}${t.enum.map((v) => html`<option value=${v}>${v}</option>`)}</select>`;
  else if (input === "json") control = html`<textarea id=${id} rows="2" spellcheck="false" onInput=${(e) => onChange(e.target.value)}>${value}</textarea>`;
  else control = html`<input id=${id} type=${input === "number" ? "number" : "text"} step="any" value=${value}
    placeholder=${t.nullable ? "(none)" : ""} onInput=${(e) => onChange(e.target.value)} />`;
  return html`<div class=${"field" + (error ? " invalid" : "") + (input === "boolean" ? " check" : "")} data-param=${name}>
    <label for=${id}>${words(name)} <span class="setting">${name}</span></label>
    ${control}
    ${schema.description && html`<small class="muted">${prose(schema.description)}</small>`}
    ${error && html`<small class="error" role="alert">${error}</small>`}
  </div>`;
}

function Upload({ api, onUploaded, onError }) {
  const [file, setFile] = useState(null);
  const [name, setName] = useState("");
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    if (!file) return setResult({ error: "Choose a seed file first." });
    const form = new FormData();
    form.append("file", file);
    if (name.trim()) form.append("name", name.trim());
    setBusy(true);
    setResult(null);
    try {
      const made = await api.upload("/seed-sets", form);
      await onUploaded(made);  // the job form lists and picks it before the upload reads as done
      setResult({ ok: `Seed set ${made.id} “${made.name}”: ${made.task_count} tasks (${made.source_format}).` });
    } catch (err) {
      onError(err);
      setResult({ error: errorText(err), errors: err.errors || [], count: err.errorCount || 0 });
    } finally {
      setBusy(false);
    }
  }
  // "seed file: line 3: field 'instruction' is empty": the line number stands out
  const withLines = (text) => text.split(/(line \d+)/).map((part, i) => (/^line \d+$/.test(part) ? html`<strong key=${i}>${part}</strong>` : part));
  return html`<form class="card" id="upload-form" onSubmit=${submit}>
    <h3>1. Upload seed tasks</h3>
    <p class="muted small">Self-Instruct JSONL, Alpaca JSON or CSV with an <code>instruction</code> column. A file with a bad line is refused whole.</p>
    <div class="field"><label for="seed-file">seed file</label>
      <input id="seed-file" type="file" accept=".jsonl,.json,.csv,.txt" onChange=${(e) => setFile(e.target.files[0] || null)} /></div>
    <div class="field"><label for="seed-name">name <span class="muted">(optional)</span></label>
      <input id="seed-name" type="text" value=${name} placeholder="the file's name" onInput=${(e) => setName(e.target.value)} /></div>
    <button type="submit" id="upload" disabled=${busy}>${busy ? "Uploading…" : "Upload"}</button>
    ${result && result.ok && html`<p class="notice" role="status" id="upload-result">${result.ok}</p>`}
    ${result && result.error && html`<div class="error" role="alert" id="upload-error"><p>${withLines(result.error)}</p>
      ${result.errors.length > 1 && html`${result.errors[0].line != null && html`<p class="small" id="upload-error-count">${result.count} bad lines${result.count > result.errors.length ? `; the first ${result.errors.length}:` : ":"}</p>`}
        <ul id="upload-errors">${result.errors.map((e, i) => html`<li key=${i}>${e.line != null ? withLines(e.msg) : `${e.loc.join(".")}: ${e.msg}`}</li>`)}</ul>`}</div>`}
  </form>`;
}

export function NewJobPage({ api, route, onError }) {
  const [kinds, setKinds] = useState(null);
  const [seedSets, setSeedSets] = useState([]);
  const [jobs, setJobs] = useState([]);
  const [exportsList, setExports] = useState([]);
  const [kind, setKind] = useState(route.params.kind || "self_instruct");  // the paper's method first
  const [values, setValues] = useState({});
  const [sources, setSources] = useState({ seed_set_id: "", source_job_id: "", export_id: "" });
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);

  const loadSeedSets = () => api.get("/seed-sets?limit=200").then((p) => setSeedSets(p.items)).catch(onError);
  useEffect(() => {
    api.get("/kinds").then((k) => {
      const offered = k.items.filter((x) => !INTERNAL.has(x.name));
      setKinds(offered);
      if (!offered.some((x) => x.name === kind) && offered.length) setKind(offered[0].name);
    }).catch((err) => { onError(err); setMessage(errorText(err)); });
    loadSeedSets();
    api.get("/jobs?limit=200").then((p) => setJobs(p.items)).catch(onError);
    api.get("/exports?limit=200").then((p) => setExports(p.items)).catch(onError);
  }, []);
  const spec = kinds && kinds.find((k) => k.name === kind);
  // a readOnly parameter is the service's to set (a build step's `build`): not a form field
  const props = spec ? Object.fromEntries(Object.entries(spec.params_schema.properties || {}).filter(([, s]) => !s.readOnly)) : {};
  const inputs = Object.fromEntries(Object.entries(props).map(([n, s]) => [n, kindOfInput(fieldType(s))]));
  // the form shows the kind's defaults when it opens, when the kind changes, and on reset
  const resetForm = () => {
    if (!spec) return;
    setValues(Object.fromEntries(Object.keys(props).map((n) => [n, inputs[n] === "boolean" ? !!spec.defaults[n] : toText(spec.defaults[n], inputs[n])])));
    setErrors({});
  };
  useEffect(resetForm, [kind, kinds]);
  useEffect(() => {
    if (!sources.seed_set_id && seedSets.length) setSources((s) => ({ ...s, seed_set_id: String(seedSets[0].id) }));
  }, [seedSets]);

  async function submit(e) {
    e.preventDefault();
    const params = {};
    const problems = {};
    for (const [name, schema] of Object.entries(props)) {
      const t = fieldType(schema);
      try {
        const value = fromText(values[name], t, inputs[name]);
        if (JSON.stringify(value) !== JSON.stringify(spec.defaults[name] ?? null) || !(name in spec.defaults)) {
          if (!(value === null && !(name in spec.defaults))) params[name] = value;
        }
      } catch (err) {
        problems[name] = err.message;
      }
    }
    setErrors(problems);
    if (Object.keys(problems).length) return setMessage("Fix the marked parameters.");
    const body = { kind, params };
    for (const source of spec.sources) if (sources[source]) body[source] = Number(sources[source]);
    setBusy(true);
    setMessage("");
    try {
      const job = await api.post("/jobs", body);
      go(["jobs", String(job.id)]);
    } catch (err) {
      onError(err);
      const byField = {};
      for (const item of err.errors || []) {
        const loc = item.loc || [];
        if (loc[0] === "body" && loc[1] === "params" && loc[2]) byField[loc[2]] = item.msg;
      }
      setErrors(byField);
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  const sourceLabel = { seed_set_id: "seed set", source_job_id: "source job", export_id: "export" };
  const sourceOptions = {
    seed_set_id: seedSets.map((s) => [s.id, `#${s.id} ${s.name} (${s.task_count} tasks)`]),
    source_job_id: jobs.filter((j) => kinds && (kinds.find((k) => k.name === j.kind) || {}).produces_examples).map((j) => [j.id, `job ${j.id} ${j.kind} (${j.status})`]),
    export_id: exportsList.map((x) => [x.id, `export ${x.id} of job ${x.job_id} (${x.format}, ${x.rows} rows)`]),
  };
  return html`<main class="new-job">
    <${Upload} api=${api} onError=${onError} onUploaded=${async (made) => {
      await loadSeedSets();
      setSources((s) => ({ ...s, seed_set_id: String(made.id) }));
    }} />
    <form class="card" id="job-form" onSubmit=${submit}>
      <h3>2. Start a job</h3>
      ${!kinds ? html`<p class="muted">Loading the job kinds…</p>` : html`
      <div class="field"><label for="job-kind">Kind of job <span class="setting">kind</span></label>
        <select id="job-kind" value=${kind} onChange=${(e) => setKind(e.target.value)}>
          ${kinds.map((k) => html`<option value=${k.name}>${k.name}</option>`)}</select>
        ${spec && html`<small class="muted">${prose(spec.description)} ${spec.queue ? `(queue: ${spec.queue})` : ""}</small>`}</div>
      ${spec && spec.sources.map((source) => html`<div class="field" key=${source}><label for=${"source-" + source}>${sourceLabel[source]}
          ${spec.sources.length > 1 ? html`<span class="muted"> (or ${spec.sources.filter((s) => s !== source).map((s) => sourceLabel[s]).join(", ")})</span>` : ""}</label>
        <select id=${"source-" + source} value=${sources[source]} onChange=${(e) => setSources({ ...sources, [source]: e.target.value })}>
          <option value="">(none)</option>
          ${sourceOptions[source].map(([id, label]) => html`<option value=${String(id)}>${label}</option>`)}</select></div>`)}
      ${(() => {
        const field = ([name, schema]) => html`<${ParamField} key=${kind + name} name=${name} schema=${schema}
          value=${values[name] ?? ""} error=${errors[name]} onChange=${(v) => setValues({ ...values, [name]: v })} />`;
        const essential = ESSENTIALS[kind] || [];
        const rest = Object.entries(props).filter(([n]) => !essential.includes(n));
        const grouped = GROUPS.map(([id, title, pattern]) => [id, title, rest.filter(([n]) => pattern.test(n) && !GROUPS.slice(0, GROUPS.findIndex((g) => g[0] === id)).some((g) => g[2].test(n)))]);
        return html`<fieldset class="params-form" id="essentials"><legend>Essentials <span class="muted small">(this service's defaults filled in)</span></legend>
            ${Object.entries(props).filter(([n]) => essential.includes(n)).map(field)}
          </fieldset>
          ${grouped.filter(([, , list]) => list.length).map(([id, title, list]) => html`<details class="field-group params-group" id=${"group-" + id} key=${kind + id}
            open=${list.some(([n]) => errors[n])}><summary>${title} <span class="muted small">(${list.length})</span></summary>${list.map(field)}</details>`)}`;
      })()}
      <div class="actions">
        <button type="submit" id="start-job" disabled=${busy}>${busy ? "Starting…" : "Start job"}</button>
        <button type="button" class="link" id="reset-params" onClick=${resetForm}>Reset to defaults</button>
      </div>`}
      ${message && html`<p class="error" role="alert" id="job-form-error">${message}</p>`}
    </form>
  </main>`;
}
