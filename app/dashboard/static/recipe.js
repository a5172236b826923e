// A dataset's recipe in a form: the seed sets every build starts from, the generation steps in
// order (each a job kind with its settings, taking the seeds or the step before), how many new
// examples a build adds (grow_by), the export formats, a size cap and the yield below which a
// scheduled build pauses. Used to create a dataset (with an optional schedule) and to see and
// edit a dataset's recipe. The API checks the recipe; its errors name the field (recipe.steps[1]...).
import { html, useEffect, useState } from "./preact-htm.module.js";
import { go } from "./util.js";
import { errorText } from "./jobs.js";

const STEP_KINDS = [["self_instruct", "Self-Instruct (new instructions from the seeds)"],
  ["evol_instruct", "Evol-Instruct (rewrites instructions to be harder or broader)"]];
const FORMATS = ["messages", "alpaca", "prompt-completion", "sharegpt"];
const enc = encodeURIComponent;

export function emptyRecipe() {
  return { seed_set_ids: [], steps: [{ kind: "self_instruct", params: {}, source: "seeds" }], grow_by: 20,
    export_formats: ["messages"], size_cap: null, min_yield_share: 0.1 };
}

// the form's state (params as JSON text) <-> a recipe object
const toForm = (recipe) => ({ ...recipe, steps: recipe.steps.map((s) => ({ ...s, paramsText: JSON.stringify(s.params || {}, null, 0) })),
  grow_by: String(recipe.grow_by), size_cap: recipe.size_cap == null ? "" : String(recipe.size_cap), min_yield_share: String(recipe.min_yield_share ?? 0.1) });

function fromForm(form) {
  const problems = {};
  const steps = form.steps.map((s, i) => {
    let params = {};
    try {
      params = s.paramsText.trim() ? JSON.parse(s.paramsText) : {};
      if (typeof params !== "object" || Array.isArray(params) || params === null) throw new Error();
    } catch {
      problems[`steps[${i}].params`] = "settings must be a JSON object, e.g. {\"temperature\": 0.7}";
    }
    return { kind: s.kind, params, source: i === 0 ? "seeds" : s.source };
  });
  const out = { seed_set_ids: form.seed_set_ids, steps, grow_by: Number(form.grow_by), export_formats: form.export_formats,
    size_cap: form.size_cap.trim() === "" ? null : Number(form.size_cap), min_yield_share: Number(form.min_yield_share) };
  if (!form.seed_set_ids.length) problems.seed_set_ids = "pick at least one seed set";
  if (!Number.isInteger(out.grow_by) || out.grow_by < 1) problems.grow_by = "a whole number of at least 1";
  if (!form.export_formats.length) problems.export_formats = "pick at least one format";
  return { recipe: out, problems };
}

// the API's 422: errors with loc [body, recipe, steps, 0, ...] -> "steps[0]..." keys
export function fieldErrors(err) {
  const out = {};
  for (const e of (err && err.errors) || []) {
    const loc = (e.loc || []).filter((p) => p !== "body");
    const path = loc.slice(loc[0] === "recipe" ? 1 : 0).reduce((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${p}` : String(p)), "");
    out[path || "recipe"] = e.msg;
  }
  return out;
}

const Err = ({ errors, at }) => {
  const found = Object.entries(errors).filter(([k]) => k === at || k.startsWith(at + ".") || k.startsWith(at + "["));
  return found.length ? html`<small class="error" role="alert">${found.map(([k, m]) => html`<span key=${k}>${m} </span>`)}</small>` : null;
};

export function RecipeEditor({ api, initial, errors, onChange }) {
  const [form, setForm] = useState(() => toForm(initial || emptyRecipe()));
  const [seedSets, setSeedSets] = useState(null);
  useEffect(() => { api.get("/seed-sets?limit=200").then((p) => setSeedSets(p.items)).catch(() => setSeedSets([])); }, []);
  const update = (change) => {
    const next = { ...form, ...change };
    setForm(next);
    onChange(fromForm(next));
  };
  useEffect(() => { onChange(fromForm(form)); }, []);
  const setStep = (i, change) => update({ steps: form.steps.map((s, j) => (j === i ? { ...s, ...change } : s)) });
  const toggle = (list, value) => (list.includes(value) ? list.filter((x) => x !== value) : [...list, value]);
  return html`<div class="recipe-editor">
    <fieldset class="field" id="recipe-seed-sets"><legend>Seed sets <span class="setting">seed_set_ids</span></legend>
      ${seedSets === null ? html`<p class="muted small">Loading your seed sets…</p>`
        : seedSets.length === 0 ? html`<p class="muted small">No seed set yet: <a href="#/new">upload one</a> first.</p>`
        : html`<div class="checks">${seedSets.map((s) => html`<label class="check" key=${s.id}><input type="checkbox" class="seed-set" value=${s.id}
            checked=${form.seed_set_ids.includes(s.id)} onChange=${() => update({ seed_set_ids: toggle(form.seed_set_ids, s.id) })} />
            ${s.name} <span class="muted small">(#${s.id}, ${s.task_count} tasks)</span></label>`)}</div>`}
      <${Err} errors=${errors} at="seed_set_ids" />
    </fieldset>
    <fieldset class="field" id="recipe-steps"><legend>Steps, run in order <span class="setting">steps</span></legend>
      <ol class="steps">${form.steps.map((s, i) => html`<li key=${i} class="step" data-step=${i}>
        <div class="inline-form">
          <label>Step ${i + 1}: job kind <span class="setting">kind</span> <select class="step-kind" value=${s.kind} onChange=${(e) => setStep(i, { kind: e.target.value })}>
            ${STEP_KINDS.map(([k, label]) => html`<option value=${k}>${label}</option>`)}</select></label>
          ${i === 0 ? html`<span class="muted small">takes the seed sets</span>`
            : html`<label>takes <span class="setting">source</span> <select class="step-source" value=${s.source} onChange=${(e) => setStep(i, { source: e.target.value })}>
              <option value="previous">the output of the step before</option><option value="seeds">the seed sets</option></select></label>`}
          ${form.steps.length > 1 && html`<button type="button" class="link" onClick=${() => update({ steps: form.steps.filter((_, j) => j !== i) })}>Remove step ${i + 1}</button>`}
        </div>
        <label>settings, as JSON (empty: the service's defaults) <span class="setting">params</span>
          <textarea class="step-params" rows="2" spellcheck="false" placeholder='{"temperature": 0.7, "model": "…"}'
            onInput=${(e) => setStep(i, { paramsText: e.target.value })}>${s.paramsText}</textarea></label>
        <${Err} errors=${errors} at=${`steps[${i}]`} />
      </li>`)}</ol>
      ${form.steps.length < 10 && html`<button type="button" id="add-step" class="small" onClick=${() => update({ steps: [...form.steps, { kind: "evol_instruct", params: {}, paramsText: "{}", source: "previous" }] })}>Add a step</button>`}
    </fieldset>
    <div class="field"><label for="recipe-grow-by">New examples each build adds <span class="setting">grow_by</span></label>
      <input id="recipe-grow-by" type="number" min="1" value=${form.grow_by} onInput=${(e) => update({ grow_by: e.target.value })} />
      <${Err} errors=${errors} at="grow_by" /></div>
    <fieldset class="field" id="recipe-formats"><legend>Export formats offered <span class="setting">export_formats</span></legend>
      <div class="checks">${FORMATS.map((f) => html`<label class="check" key=${f}><input type="checkbox" class="export-format" value=${f}
        checked=${form.export_formats.includes(f)} onChange=${() => update({ export_formats: toggle(form.export_formats, f) })} /> ${f}</label>`)}</div>
      <${Err} errors=${errors} at="export_formats" /></fieldset>
    <details class="field-group"><summary>Limits</summary>
      <div class="field"><label for="recipe-size-cap">Stop growing at this many examples (empty: no cap) <span class="setting">size_cap</span></label>
        <input id="recipe-size-cap" type="number" min="1" value=${form.size_cap} onInput=${(e) => update({ size_cap: e.target.value })} />
        <${Err} errors=${errors} at="size_cap" /></div>
      <div class="field"><label for="recipe-min-yield">Pause the schedule when a build adds less than this share of grow_by <span class="setting">min_yield_share</span></label>
        <input id="recipe-min-yield" type="number" min="0" max="1" step="0.05" value=${form.min_yield_share} onInput=${(e) => update({ min_yield_share: e.target.value })} />
        <${Err} errors=${errors} at="min_yield_share" /></div>
    </details>
  </div>`;
}

export function CreateDataset({ api, owner, onError }) {
  const [details, setDetails] = useState({ name: "", description: "", license: "", cron: "", timezone: "UTC" });
  const [parsed, setParsed] = useState({ recipe: emptyRecipe(), problems: {} });
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setMessage("");
    const local = { ...parsed.problems };
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(details.name)) local.name = "letters, digits, . _ - (up to 100), starting with a letter or digit";
    setErrors(local);
    if (Object.keys(local).length) return setMessage("Fix the fields marked below.");
    setBusy(true);
    try {
      const body = { name: details.name, description: details.description, recipe: parsed.recipe, ...(details.license.trim() ? { license: details.license.trim() } : {}) };
      const made = await api.post("/datasets", body);
      if (details.cron.trim()) {
        try {
          await api.put(`/datasets/${enc(made.name)}/schedule`, { cron: details.cron.trim(), timezone: details.timezone.trim() || "UTC", missed_fire_policy: "skip" });
        } catch (err) {
          onError(err);
          go(["datasets", made.name, "schedule"]);
          return;
        }
      }
      go(["datasets", made.name, "recipe"], { created: 1 });
    } catch (err) {
      onError(err);
      setErrors(fieldErrors(err));
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  const set = (change) => { setDetails({ ...details, ...change }); setErrors({}); setMessage(""); };  // a change clears the marks
  return html`<main class="datasets-page">
    <a href="#/datasets">← All datasets</a>
    <form class="card new-dataset" id="new-dataset" onSubmit=${submit} novalidate>
      <h2>New dataset</h2>
      <p class="muted small">A dataset grows by builds of its recipe; each build is a new version you can review, diff and download.
        ${owner && html` On the server, <code>sprout datasets --owner ${owner} create …</code> makes one you see here too.`}</p>
      <div class="field"><label for="dataset-name">Name <span class="setting">name</span></label>
        <input id="dataset-name" value=${details.name} maxlength="100" placeholder="support-sft" onInput=${(e) => set({ name: e.target.value })} />
        <${Err} errors=${errors} at="name" /></div>
      <div class="field"><label for="dataset-description">What it is for <span class="setting">description</span></label>
        <input id="dataset-description" value=${details.description} onInput=${(e) => set({ description: e.target.value })} /></div>
      <${RecipeEditor} api=${api} errors=${errors} onChange=${(p) => { setParsed(p); setErrors({}); setMessage(""); }} />
      <details class="field-group"><summary>License and schedule</summary>
        <div class="field"><label for="dataset-license">License <span class="setting">license</span></label>
          <input id="dataset-license" value=${details.license} placeholder="apache-2.0" onInput=${(e) => set({ license: e.target.value })} /></div>
        <div class="field"><label for="dataset-cron">Build on a schedule (cron; empty: only when asked) <span class="setting">cron</span></label>
          <input id="dataset-cron" value=${details.cron} placeholder="0 3 * * *" onInput=${(e) => set({ cron: e.target.value })} /></div>
        <div class="field"><label for="dataset-timezone">Time zone of the schedule <span class="setting">timezone</span></label>
          <input id="dataset-timezone" value=${details.timezone} onInput=${(e) => set({ timezone: e.target.value })} /></div>
      </details>
      <div class="actions"><button type="submit" id="create-dataset" disabled=${busy}>Create the dataset</button></div>
      ${message && html`<p class="error" role="alert" id="create-message">${message}</p>`}
    </form>
  </main>`;
}

export function RecipeView({ api, name, dataset, params, onError, onSaved }) {
  const [parsed, setParsed] = useState({ recipe: dataset.recipe, problems: {} });
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState(params.created ? `Dataset ${name} created. Build its first version with Build now.` : "");
  async function save(e) {
    e.preventDefault();
    setErrors(parsed.problems);
    if (Object.keys(parsed.problems).length) return setMessage("Fix the fields marked below.");
    try {
      await api.patch(`/datasets/${enc(name)}`, { recipe: parsed.recipe });
      setMessage("Recipe saved: the next build uses it.");
      onSaved();
    } catch (err) {
      onError(err);
      setErrors(fieldErrors(err));
      setMessage(errorText(err));
    }
  }
  return html`<form class="card recipe-view" id="recipe-form" onSubmit=${save} novalidate>
    <h3>Recipe</h3>
    ${message && html`<p class="notice" role="status" id="recipe-message">${message}</p>`}
    <${RecipeEditor} api=${api} initial=${dataset.recipe} errors=${errors} onChange=${setParsed} />
    <div class="actions"><button type="submit" id="save-recipe">Save the recipe</button></div>
  </form>`;
}
