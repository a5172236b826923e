// Jobs: the list, and one job's detail (overview, rows with their evidence and judge scores,
// charts, exports) with its actions. A finished job is loaded once and never polled again.
import { html, useCallback, useEffect, useRef, useState } from "./preact-htm.module.js";
import { ApiError, download, Unreachable } from "./api.js";
import { currentParams, duration, evolves, FINISHED, fmtBytes, fmtScore, fmtSeconds, fmtTime, go, isActive, judgesOnly, phase, producesRows, trains, usePoll } from "./util.js";
import { Evidence } from "./evidence.js";
import { binLabels, ChartBox, COLORS, timeLabel } from "./charts.js";
import { Diversity } from "./diversity.js";
import { Contamination, ModelServer, Stopped, TOKENS_PER_ACCEPTED, spending } from "./figures.js";
import { InstanceScores, judging, JudgeSummary, ScoreForm } from "./scores.js";

const PAGE = 25;
const EXPORT_FORMATS = ["alpaca", "messages", "prompt-completion", "sharegpt", "parquet"];  // every format POST /exports takes

export function errorText(err) {
  if (err instanceof Unreachable) return "The API cannot be reached; the page retries by itself.";
  return err && err.message ? err.message : String(err);
}

function StatusBadge({ job }) {
  const stopping = job.cancel_requested && job.status === "running";
  return html`<span class=${"status " + job.status}>${stopping ? "stopping" : job.status}</span>`;
}

function Progress({ job }) {
  const p = job.progress || {};
  const done = FINISHED.has(job.status);
  const pct = p.percent ?? (done && job.status === "succeeded" ? 100 : null);
  const unit = trains(job) ? "steps" : judgesOnly(job) ? "judged" : "curated";
  const text = p.target ? `${p.done} / ${p.target} ${unit}` : `${p.done} ${unit}`;
  return html`<div class="progress">
    <div class="bar" role="progressbar" aria-label="progress" aria-valuemin="0" aria-valuemax="100"
      aria-valuenow=${pct ?? undefined}>
      <div class=${pct === null ? "indeterminate" : ""} style=${pct === null ? "" : `width:${pct}%`}></div></div>
    <span class="progress-text">${text}</span>
  </div>`;
}

function ListItem({ job, selected }) {
  const c = job.counters || {};
  // the surplus past the target (over_target) was not judged bad: it is not counted as rejected
  const rejected = Object.entries(c.rejected || {}).reduce((a, [rule, n]) => a + (rule === "over_target" ? 0 : n), 0);
  const surplus = (c.rejected || {}).over_target || 0;
  return html`<li class=${selected ? "selected" : ""}>
    <a href=${"#/jobs/" + job.id} aria-current=${selected ? "true" : null} class="job-link" data-job=${job.id}>
      <span class="job-title"><strong>#${job.id}</strong> ${job.kind}${stepOf(job) ? html` <span class="muted small step-of">step ${stepOf(job).step} of build ${stepOf(job).build_job_id}</span>` : ""}</span>
      <${StatusBadge} job=${job} />
      <${Progress} job=${job} />
      <span class="muted small">${trains(job) ? `loss ${c.loss ?? "–"}` : judgesOnly(job) ? `${c.judge_unparseable ?? 0} unparseable` : `${rejected} rejected${surplus ? ` · ${surplus} over target` : ""}`}
        ${isActive(job) && job.progress.eta_s != null ? ` · ETA ${fmtSeconds(job.progress.eta_s)}` : ""}
        ${" · "}${fmtTime(job.created_at)}</span>
    </a>
  </li>`;
}

function EmptyState() {
  return html`<section class="card empty" id="empty-state">
    <h2>No jobs yet</h2>
    <p>A job grows a few seed tasks into a curated dataset. To start your first one:</p>
    <ol>
      <li>upload a seed file (Self-Instruct JSONL, Alpaca JSON or CSV; the repository ships <code>seeds/default.jsonl</code>);</li>
      <li>pick a job kind (Self-Instruct to start from seeds), set its parameters (a small <code>target</code> is a quick first run) and start it.</li>
    </ol>
    <p><a class="button" href="#/new">Upload seeds and start a job</a></p>
    <p class="muted">From a shell: <code>curl -H "Authorization: Bearer $KEY" -F file=@seeds/default.jsonl /api/v1/seed-sets</code>, then${" "}
      <code>POST /api/v1/jobs</code>${" "}(see <a href="/docs">/docs</a>).</p>
  </section>`;
}

export function JobsPage({ api, route, pollMs, onError, kinds }) {
  const [list, setList] = useState(null);
  const [limit, setLimit] = useState(50);
  const [error, setError] = useState("");
  const [bump, setBump] = useState(0);
  const selected = route.parts[0] === "jobs" && route.parts[1] ? Number(route.parts[1]) : null;
  const anyActive = !!(list && list.items.some(isActive));
  const loadList = useCallback(async () => {
    try {
      setList(await api.get(`/jobs?limit=${limit}`));
      setError("");
    } catch (err) {
      onError(err);
      if (!(err instanceof Unreachable)) setError(errorText(err));
      throw err;
    }
  }, [api, limit]);
  // the list refreshes quickly while a job runs, and rarely (jobs started elsewhere) when none does
  usePoll(loadList, anyActive ? pollMs : 30000, true, [limit, bump]);
  const changed = useCallback(() => setBump((b) => b + 1), []);

  return html`<main class=${"jobs-page" + (selected ? " has-detail" : "")}>
    <section class="job-list" aria-label="jobs">
      <div class="list-head"><h2>Jobs ${list ? html`<span class="muted">(${list.total})</span>` : ""}</h2>
        <a class="button small" href="#/new">New job</a></div>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${list === null ? html`<p class="muted">Loading…</p>` : list.total === 0 ? html`<${EmptyState} />` : html`
        <ul class="jobs">${list.items.map((job) => html`<${ListItem} key=${job.id} job=${job} selected=${job.id === selected} />`)}</ul>
        ${list.total > list.items.length && html`<button type="button" onClick=${() => setLimit(limit + 50)}>Show more</button>`}`}
    </section>
    ${selected ? html`<${JobDetail} key=${selected} api=${api} id=${selected} route=${route} pollMs=${pollMs} kinds=${kinds}
        onError=${onError} onChanged=${changed} />`
      : list && list.total > 0 && html`<section class="detail card muted hint">Select a job to see its progress, rows and evidence.</section>`}
  </main>`;
}

// --- one job ----------------------------------------------------------------------------------
const TABS = [["overview", "Overview"], ["rows", "Rows"], ["charts", "Charts"], ["exports", "Export"]];

function JobDetail({ api, id, route, pollMs, onError, onChanged, kinds }) {
  const [job, setJob] = useState(null);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [scoring, setScoring] = useState(false);
  const tab = route.parts[2] || "overview";
  const params = route.params;
  const load = useCallback(async () => {
    try {
      setJob(await api.get(`/jobs/${id}`));
      setError("");
    } catch (err) {
      onError(err);
      if (err instanceof ApiError && err.status === 404) {
        setError(`There is no job ${id} (deleted, or not yours).`);
        setJob(null);
        return;
      }
      throw err;
    }
  }, [api, id]);
  const live = job === null ? !error : isActive(job);
  usePoll(load, pollMs, live, [id]);

  async function act(path, message) {
    setNotice("");
    try {
      setJob(await api.post(path));
      setNotice(message);
      onChanged();
    } catch (err) {
      onError(err);
      setNotice(errorText(err));
    }
  }
  async function remove() {
    setConfirming(false);
    try {
      await api.del(`/jobs/${id}`);
      onChanged();
      go(["jobs"]);
    } catch (err) {
      onError(err);
      setNotice(errorText(err));
    }
  }

  if (error) return html`<section class="detail card"><a class="back" href="#/jobs">← All jobs</a><p class="error" role="alert">${error}</p></section>`;
  if (!job) return html`<section class="detail card"><p class="muted">Loading job ${id}…</p></section>`;
  const rows = producesRows(job, kinds);
  const tabs = rows ? TABS : TABS.slice(0, 1);
  const scoreKind = kinds && kinds.score;  // asked for by name: the API's kind for judge scores
  const canScore = rows && scoreKind && FINISHED.has(job.status) && ((job.progress || {}).done || 0) > 0;  // rows to score
  // review a job's rows: a dataset whose version 1 holds them (made once), opened in review mode
  async function reviewRows() {
    const name = `${job.kind.replace(/_/g, "-")}-job-${job.id}`;
    try {
      await api.post("/datasets", { name, description: `The curated rows of job ${job.id}, to review.`, from_job_id: job.id,
        recipe: { seed_set_ids: [job.seed_set_id], steps: [{ kind: job.kind, params: {} }], grow_by: Math.max(1, job.progress.done || 1) } });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409)) { onError(err); setNotice(errorText(err)); return; }  // 409: made before
    }
    go(["datasets", name, "review"]);
  }
  return html`<section class="detail" aria-label=${"job " + job.id} data-job=${job.id} data-status=${job.status}
      data-polling=${live ? "live" : "stopped"}>
    <a class="back" href="#/jobs">← All jobs</a>
    <div class="card detail-head">
      <div class="title-line">
        <h2>Job ${job.id} <span class="muted">${job.kind}</span></h2>
        <${StatusBadge} job=${job} />
      </div>
      <p class="phase" id="phase"><span class="muted">phase:</span> ${phase(job, kinds)}</p>
      <${Progress} job=${job} />
      <div class="actions">
        ${isActive(job) && !job.cancel_requested && html`<button type="button" id="cancel-job" onClick=${() => act(`/jobs/${id}/cancel`, "Cancel requested: the job stops within seconds and keeps what it accepted.")}>Cancel</button>`}
        ${(job.status === "failed" || job.status === "cancelled") && html`<button type="button" id="retry-job" onClick=${() => act(`/jobs/${id}/retry`, "Queued again: it resumes from what it stored.")}>Retry</button>`}
        ${canScore && html`<button type="button" id="score-job" aria-expanded=${scoring ? "true" : "false"}
          onClick=${() => setScoring(!scoring)}>Score with a judge…</button>`}
        ${canScore && job.seed_set_id && html`<button type="button" id="review-job" onClick=${reviewRows}
          title="a dataset whose version 1 holds these rows, opened in review mode">Review these rows</button>`}
        ${FINISHED.has(job.status) && html`<button type="button" class="danger" id="delete-job" onClick=${() => setConfirming(true)}>Delete…</button>`}
      </div>
      ${canScore && scoring && html`<${ScoreForm} api=${api} job=${job} kind=${scoreKind} onError=${onError} onChanged=${onChanged}
        onNotice=${(err) => setNotice(err ? errorText(err) : "")} onClose=${() => setScoring(false)} />`}
      ${notice && html`<p class="notice" role="status">${notice}</p>`}
      <${Stopped} job=${job} />
    </div>
    <nav class="tabs" role="tablist" aria-label="job views">
      ${tabs.map(([name, label]) => html`<a role="tab" aria-selected=${tab === name ? "true" : "false"} class=${tab === name ? "on" : ""}
        href=${`#/jobs/${id}/${name}`} id=${"tab-" + name}>${label}</a>`)}
    </nav>
    ${tab === "rows" && rows ? html`<${Rows} api=${api} job=${job} params=${params} onError=${onError} />`
      : tab === "charts" && rows ? html`<${Charts} api=${api} job=${job} pollMs=${pollMs} onError=${onError} />`
      : tab === "exports" && rows ? html`<${Exports} api=${api} job=${job} onError=${onError} />`
      : html`<${Overview} api=${api} job=${job} onError=${onError} rows=${rows} />`}
    ${confirming && html`<${Confirm} title=${`Delete job ${job.id}?`}
      text="Its rows and exports are deleted with it. This cannot be undone." action="Delete job"
      onYes=${remove} onNo=${() => setConfirming(false)} />`}
  </section>`;
}

export function Confirm({ title, text, action, onYes, onNo }) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current && !ref.current.open) ref.current.showModal();
  }, []);
  return html`<dialog ref=${ref} class="confirm" aria-labelledby="confirm-title" onCancel=${(e) => { e.preventDefault(); onNo(); }}>
    <h3 id="confirm-title">${title}</h3>
    <p>${text}</p>
    <div class="actions">
      <button type="button" class="danger" id="confirm-yes" onClick=${onYes}>${action}</button>
      <button type="button" id="confirm-no" onClick=${onNo} autofocus>Keep it</button>
    </div>
  </dialog>`;
}

// --- overview: counters, metadata, model server and contamination (figures.js), parameters -------------------
function Overview({ api, job, onError, rows }) {
  const c = job.counters || {};
  const [seedSet, setSeedSet] = useState(null);
  const [llmRows, setLlmRows] = useState(null);
  useEffect(() => {
    if (!job.seed_set_id) return;
    api.get(`/seed-sets/${job.seed_set_id}`).then(setSeedSet).catch(onError);
  }, [job.seed_set_id]);
  const llmFailed = (c.rejected || {}).llm_error || 0;
  useEffect(() => {
    if (!llmFailed) return;
    api.get(`/jobs/${job.id}/instructions?rule=llm_error&sort=-seq&limit=5`).then(setLlmRows).catch(onError);
  }, [job.id, llmFailed]);
  const rejected = Object.entries(c.rejected || {}).sort((a, b) => b[1] - a[1]);
  const totalRejected = rejected.reduce((a, [, n]) => a + n, 0);
  const filter = (params) => go(["jobs", String(job.id), "rows"], params);
  const dur = duration(job);
  return html`<div class="overview">
    ${job.error && html`<div class="card error-box" id="job-error"><h3>Error</h3><pre>${job.error}</pre></div>`}
    ${trains(job) ? html`<div class="card"><h3>Training</h3><dl>
        <dt>stage</dt><dd>${c.stage ?? "–"}</dd>
        <dt>step</dt><dd>${c.step ?? 0} / ${c.max_steps ?? "?"}</dd>
        <dt>loss</dt><dd>${c.loss ?? "–"}</dd>
        ${job.result && job.result.metrics && Object.entries(job.result.metrics).map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}
      </dl></div>`
    : rows && html`<div class="card counters" id="counters">
      <h3>Counters</h3>
      <div class="tiles">
        <button type="button" class="tile" onClick=${() => filter({})}><span class="n" id="n-generated">${c.generated ?? 0}</span> generated</button>
        <button type="button" class="tile ok" onClick=${() => filter({ fate: "accepted" })}><span class="n" id="n-accepted">${c.accepted ?? 0}</span> accepted</button>
        <button type="button" class="tile bad" onClick=${() => filter({ fate: "rejected" })}><span class="n" id="n-rejected">${totalRejected}</span> rejected</button>
        <div class="tile"><span class="n">${c.instances ?? 0}</span> instances kept</div>
      </div>
      ${rejected.length > 0 && html`<h4>Rejections by rule <span class="muted small">(click to see the rows)</span></h4>
        <ul class="rules">${rejected.map(([rule, n]) => html`<li key=${rule}><button type="button" class="rule-filter" data-rule=${rule}
          onClick=${() => filter({ fate: "rejected", rule })}><code>${rule}</code> <span class="n">${n}</span></button></li>`)}</ul>`}
      ${Object.keys(c.instances_rejected || {}).length > 0 && html`<h4>Instances rejected</h4>
        <ul class="rules plain">${Object.entries(c.instances_rejected).map(([rule, n]) => html`<li key=${rule}><code>${rule}</code> ${n}</li>`)}</ul>`}
      ${Object.keys(c.operations || {}).length > 0 && html`<h4>Evolution operations</h4>
        <table class="ops"><thead><tr><th>operation</th><th>accepted</th><th>rejected</th></tr></thead><tbody>
        ${Object.entries(c.operations).map(([op, v]) => html`<tr key=${op}><td><code>${op}</code></td><td>${v.accepted}</td><td>${v.rejected}</td></tr>`)}
        </tbody></table>`}
    </div>`}
    <div class="card" id="metadata">
      <h3>Job</h3>
      <dl>
        <dt>created</dt><dd>${fmtTime(job.created_at)}</dd>
        <dt>started</dt><dd>${fmtTime(job.started_at)}</dd>
        <dt>finished</dt><dd>${fmtTime(job.finished_at)}</dd>
        <dt>duration</dt><dd>${dur === null ? "–" : fmtSeconds(dur)}</dd>
        <dt>rate / ETA</dt><dd>${job.progress.rate_per_min ?? "–"} per min · ETA ${fmtSeconds(job.progress.eta_s)}</dd>
        <dt>worker</dt><dd>${job.worker || "–"} ${job.attempts > 1 ? html`<span class="muted">(attempt ${job.attempts})</span>` : ""}</dd>
        ${job.seed_set_id && html`<dt>seed set</dt><dd>${seedSet ? `${seedSet.name} (#${seedSet.id}, ${seedSet.task_count} tasks, ${seedSet.source_format})` : "#" + job.seed_set_id}</dd>`}
        ${job.source_job_id && html`<dt>source</dt><dd><a href=${"#/jobs/" + job.source_job_id}>job ${job.source_job_id}</a></dd>`}
        ${job.params.dataset_id && html`<${BuildLinks} job=${job} />`}
        ${stepOf(job) && html`<dt>part of</dt><dd id="build-of-step">step ${stepOf(job).step} of${" "}
          <a href=${"#/jobs/" + stepOf(job).build_job_id}>build job ${stepOf(job).build_job_id}</a></dd>`}
      </dl>
    </div>
    ${rows && html`<${ModelServer} job=${job} lost=${llmFailed} lostRows=${llmRows} />`}
    ${judging(job) && html`<${JudgeSummary} job=${job} rowsJob=${rows ? job.id : (job.result || {}).source_job_id ?? job.source_job_id} />`}
    ${rows && job.result && job.result.contamination && html`<${Contamination} report=${job.result.contamination}
      rejected=${(c.rejected || {}).contaminated || 0} onRows=${() => filter({ fate: "rejected", rule: "contaminated" })} />`}
    <${ResultFields} job=${job} />
    <details class="card" id="params"><summary><h3>Parameters</h3></summary>
      <dl class="params">${Object.entries(job.params || {}).map(([k, v]) => html`<dt>${k}</dt><dd><code>${JSON.stringify(v)}</code></dd>`)}</dl>
    </details>
  </div>`;
}

// the dataset build a step job belongs to: its params.build (a step made before that param: its result's)
function stepOf(job) {
  return (job.params || {}).build || (job.result || {}).build || null;
}

// a compact view of a result value: text for a scalar, short JSON for the rest
function resultValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "object") return String(v);
  const text = JSON.stringify(v);
  return text.length > 240 ? text.slice(0, 240) + "…" : text;
}

// The job's result, field by field as its kind's result model describes them (the API's
// job.result_fields: title, description, value): any kind, a new one too, with no change here.
function ResultFields({ job }) {
  const fields = (job.result_fields || []).filter((f) => f.name !== "followups");
  if (!fields.length) return null;
  return html`<details class="card" id="result-fields" open=${FINISHED.has(job.status)}><summary><h3>Result</h3></summary>
    <dl class="params">${fields.map((f) => html`<dt key=${f.name} data-field=${f.name} title=${f.description || ""}>${f.title}</dt>
      <dd><code>${resultValue(f.value)}</code></dd>`)}</dl>
  </details>`;
}

// a dataset build's page links its dataset, its step jobs and the version it made (each links back)
function BuildLinks({ job }) {
  const r = job.result || {};
  const ds = r.dataset ? encodeURIComponent(r.dataset) : null;
  return html`<dt>dataset</dt><dd id="build-dataset">${ds ? html`<a href=${"#/datasets/" + ds}>${r.dataset}</a>` : "#" + job.params.dataset_id}</dd>
    <dt>steps</dt><dd id="build-step-jobs">${(r.steps || []).length ? (r.steps || []).map((id, i) => html`${i ? " → " : ""}<a key=${id} href=${"#/jobs/" + id}>job ${id}</a>`)
      : html`<span class="muted">none yet</span>`}</dd>
    <dt>version made</dt><dd id="build-version">${r.version && ds ? html`<a href=${`#/datasets/${ds}/diff?from=${Math.max(1, r.version - 1)}&to=${r.version}`}>v${r.version}</a>`
      : html`<span class="muted">${FINISHED.has(job.status) ? "none" : "not yet"}</span>`}</dd>`;
}

// --- rows: filter, search, sort, page; evidence of each row ---------------------------------------
const SORTS = [["seq", "decision order"], ["-seq", "newest first"], ["-max_rouge_l", "most similar first"], ["max_rouge_l", "least similar first"]];

// min_quality: a judge's quality score, 1-6 (the API takes 0-6; below 1 filters nothing)
const qualityOf = (text) => {
  const n = Number(text);
  return text !== "" && text !== undefined && Number.isFinite(n) && n >= 1 && n <= 6 ? n : null;
};

function Rows({ api, job, params, onError }) {
  const [page, setPage] = useState(null);
  const [error, setError] = useState("");
  const [search, setSearch] = useState(params.q || "");
  const [minText, setMinText] = useState(params.min_quality || "");
  const [judges, setJudges] = useState([]);
  const fate = params.fate || "", rule = params.rule || "", q = params.q || "", sort = params.sort || "seq";
  const judge = params.judge || "";
  const minQuality = qualityOf(params.min_quality);
  const number = Math.max(1, Number(params.page) || 1);
  const open = params.open ? Number(params.open) : null;
  const generated = (job.counters || {}).generated || 0;
  const set = (changes) => go(["jobs", String(job.id), "rows"], { ...currentParams(), page: undefined, open: undefined, ...changes });
  useEffect(() => setSearch(q), [q]);
  useEffect(() => setMinText(params.min_quality || ""), [params.min_quality]);
  // the judges that scored this job: the quality filter, and a choice when there are several
  useEffect(() => {
    api.get(`/jobs/${job.id}/judges`).then((j) => setJudges(j.items)).catch(onError);
  }, [job.id, job.status]);
  // The key each page starts after, learnt from the page before it: Next (and Previous back
  // over pages seen) pages by key, which costs the same deep into a million-row job; a page
  // jumped to by number is asked for by offset.
  // A page by key leaves its total out (counting a million rows costs as much as the page):
  // the total of the page by offset it started from is kept, and asked for again while the
  // job is still adding rows.
  const starts = useRef({ filters: "", after: {}, total: null });
  useEffect(() => {
    const filters = JSON.stringify([job.id, fate, rule, q, sort, minQuality, judge]);
    if (starts.current.filters !== filters) starts.current = { filters, after: {}, total: null };
    const after = number > 1 ? starts.current.after[number] : undefined;
    const query = new URLSearchParams({ limit: PAGE, sort });
    if (after) query.set("after", after); else query.set("offset", (number - 1) * PAGE);
    if (after && (isActive(job) || starts.current.total === null)) query.set("count", "true");
    if (fate) query.set("fate", fate);
    if (rule) query.set("rule", rule);
    if (q) query.set("q", q);
    if (minQuality !== null) query.set("min_quality", String(minQuality));
    if (judge) query.set("judge", judge);
    let current = true;  // an answer to a request the filters have since replaced is dropped
    api.get(`/jobs/${job.id}/instructions?${query}`).then((p) => {
      if (!current) return;
      if (p.next_after) starts.current.after[number + 1] = p.next_after;
      if (p.total !== null && p.total !== undefined) starts.current.total = p.total;
      setPage({ ...p, total: starts.current.total, offset: (number - 1) * PAGE });
      setError("");
    })
      .catch((err) => { onError(err); if (current) setError(errorText(err)); });
    return () => { current = false; };
  }, [job.id, fate, rule, q, sort, number, generated, minQuality, judge]);
  const badMin = minText !== "" && qualityOf(minText) === null;
  const applyMin = () => { if (!badMin && minText !== (params.min_quality || "")) set({ min_quality: minText }); };
  const scored = judges.length > 0 || minQuality !== null || judge;
  const rules = Array.from(new Set([...Object.keys((job.counters || {}).rejected || {}), ...(rule ? [rule] : [])])).sort();
  const pages = page ? Math.max(1, Math.ceil(page.total / PAGE)) : 1;
  return html`<div class="rows-view">
    <form class="filters card" role="search" noValidate onSubmit=${(e) => { e.preventDefault(); set({ q: search.trim(), ...(badMin ? {} : { min_quality: minText }) }); }}>
      <label>fate <select id="filter-fate" value=${fate} onChange=${(e) => set({ fate: e.target.value, rule: e.target.value === "accepted" ? "" : rule })}>
        <option value="">all</option><option value="accepted">accepted</option><option value="rejected">rejected</option></select></label>
      <label>rule <select id="filter-rule" value=${rule} onChange=${(e) => set({ rule: e.target.value, fate: e.target.value ? "rejected" : fate })}>
        <option value="">any</option>${rules.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
      <label>sort <select id="sort" value=${sort} onChange=${(e) => set({ sort: e.target.value === "seq" ? "" : e.target.value })}>
        ${SORTS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></label>
      ${scored && html`<label title="the judge's quality score, 1-6">min quality <input id="filter-min-quality" type="number" min="1" max="6" step="0.1"
        inputmode="decimal" value=${minText} placeholder="1-6" aria-invalid=${badMin ? "true" : "false"}
        onInput=${(e) => setMinText(e.target.value)} onChange=${applyMin} /></label>`}
      ${(judges.length > 1 || judge) && html`<label>judge <select id="filter-judge" value=${judge} onChange=${(e) => set({ judge: e.target.value })}>
        <option value="">latest score</option>${Array.from(new Set([...judges.map((j) => j.judge), ...(judge ? [judge] : [])]))
          .map((name) => html`<option value=${name}>${name}</option>`)}</select></label>`}
      <label class="grow">search <input id="search" type="search" value=${search} placeholder="words in the instruction"
        onInput=${(e) => setSearch(e.target.value)} /></label>
      <button type="submit">Search</button>
      ${(fate || rule || q || params.min_quality || judge) && html`<button type="button" class="link" id="clear-filters"
        onClick=${() => set({ fate: "", rule: "", q: "", min_quality: "", judge: "" })}>Clear filters</button>`}
      ${badMin && html`<p class="error small" role="alert" id="min-quality-error">min quality: a number from 1 to 6</p>`}
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${page && html`<p class="muted" id="rows-summary">${page.total === 0 ? "No rows match." :
      `Rows ${page.offset + 1}–${page.offset + page.items.length} of ${page.total}`}</p>
      <ol class="rows" id="rows">${page.items.map((row) => html`<${Row} key=${row.id} api=${api} job=${job} row=${row}
        open=${row.id === open} onToggle=${() => go(["jobs", String(job.id), "rows"], { ...currentParams(), open: row.id === open ? undefined : row.id })}
        onError=${onError} />`)}</ol>
      ${pages > 1 && html`<${Pager} number=${number} pages=${pages} onPage=${(n) => go(["jobs", String(job.id), "rows"], { ...currentParams(), page: n, open: undefined })} />`}`}
  </div>`;
}

export function Pager({ number, pages, onPage }) {
  const [value, setValue] = useState(String(number));
  useEffect(() => setValue(String(number)), [number]);
  return html`<form class="pager" onSubmit=${(e) => { e.preventDefault(); const n = Math.min(pages, Math.max(1, Number(value) || 1)); onPage(n); }}>
    <button type="button" id="page-prev" disabled=${number <= 1} onClick=${() => onPage(number - 1)}>← Previous</button>
    <label>page <input id="page-number" type="number" min="1" max=${pages} value=${value} onInput=${(e) => setValue(e.target.value)} /> of ${pages}</label>
    <button type="button" id="page-next" disabled=${number >= pages} onClick=${() => onPage(number + 1)}>Next →</button>
  </form>`;
}

function Row({ api, job, row, open, onToggle, onError }) {
  const kept = row.instances.filter((i) => i.fate === "accepted").length;
  return html`<li class=${"row " + row.fate} data-row=${row.id} data-rule=${row.rule || ""}>
    <button type="button" class="row-head" aria-expanded=${open ? "true" : "false"} onClick=${onToggle}>
      <span class="seq">#${row.seq}</span>
      <span class=${"fate " + row.fate}>${row.fate}</span>
      ${row.rule && html`<code class="rule">${row.rule}</code>`}
      <span class="score" title="max ROUGE-L to the pool">${row.max_rouge_l != null ? "R-L " + fmtScore(row.max_rouge_l) : ""}</span>
      ${row.operation && html`<span class="op">${row.operation} · r${row.round}</span>`}
      <span class="text">${row.instruction}</span>
      <span class="muted small">${row.instances.length ? `${kept}/${row.instances.length} instances kept` : ""}</span>
      ${row.instances.map((i) => html`<${InstanceScores} key=${i.id} instance=${i} />`)}
    </button>
    ${open && html`<${Evidence} api=${api} job=${job} row=${row} onError=${onError} />`}
  </li>`;
}

// --- charts ----------------------------------------------------------------------------------------
function Charts({ api, job, pollMs, onError }) {
  const [stats, setStats] = useState(null);
  const load = useCallback(async () => {
    try {
      setStats(await api.get(`/jobs/${job.id}/stats`));
    } catch (err) {
      onError(err);
      throw err;
    }
  }, [api, job.id]);
  usePoll(load, pollMs * 2, isActive(job), [job.id, job.status]);
  if (!stats) return html`<p class="muted">Loading the figures…</p>`;
  const timeline = stats.timeline;
  const rules = Object.entries(stats.rejected_by_rule).sort((a, b) => b[1] - a[1]);
  const rouge = stats.max_rouge_l_accepted;
  const words = stats.example_words;
  const t = stats.tokens;
  const per = spending(job);  // the one figure, as the Model server panel and the CLI summary show it
  return html`<div class="charts" id="charts">
    <p class="muted" id="charts-summary">${stats.rows} candidate rows · ${t.prompt} prompt + ${t.completion} completion tokens${per.perAccepted != null ? ` · ${TOKENS_PER_ACCEPTED}: ${per.perAccepted.toFixed(1)}` : ""}</p>
    <div class="chart-grid">
      <${ChartBox} id="chart-timeline" title="Accepted and rejected over time" note="cumulative"
        empty=${timeline.length ? "" : "No rows yet."}
        config=${{ type: "line", data: { labels: timeline.map((p) => timeLabel(p.t)), datasets: [
          { label: "accepted", data: timeline.map((p) => p.accepted), borderColor: COLORS.GREEN, backgroundColor: COLORS.GREEN, pointRadius: 0 },
          { label: "rejected", data: timeline.map((p) => p.rejected), borderColor: COLORS.RED, backgroundColor: COLORS.RED, pointRadius: 0 }] } }} />
      <${ChartBox} id="chart-rules" title="Rejections by rule" empty=${rules.length ? "" : "No rejection yet."}
        config=${{ type: "bar", data: { labels: rules.map(([r]) => r), datasets: [{ label: "rejected", data: rules.map(([, n]) => n), backgroundColor: COLORS.RED }] },
          options: { indexAxis: "y", plugins: { legend: { display: false } } } }} />
      <${ChartBox} id="chart-rouge" title="Diversity: max ROUGE-L of each accepted instruction to the pool"
        note=${stats.rouge_l_threshold != null ? `rejected above ${stats.rouge_l_threshold}` : ""}
        empty=${rouge.counts.some((n) => n) ? "" : "No scored accepted instruction yet."}
        config=${{ type: "bar", data: { labels: binLabels(rouge.edges), datasets: [{ label: "accepted instructions", data: rouge.counts, backgroundColor: COLORS.BLUE }] },
          options: { plugins: { legend: { display: false } } } }} />
      <${ChartBox} id="chart-length" title="Size of each curated example" note="words of instruction, input and output"
        empty=${words.counts.some((n) => n) ? "" : "No curated example yet."}
        config=${{ type: "bar", data: { labels: binLabels(words.edges, 0), datasets: [{ label: "examples", data: words.counts, backgroundColor: COLORS.AMBER }] },
          options: { plugins: { legend: { display: false } } } }} />
    </div>
    ${!isActive(job) && producesRows(job) && html`<${Diversity} api=${api} path=${`/jobs/${job.id}/diversity`} title="Diversity of the curated instructions" />`}
  </div>`;
}

// --- exports -----------------------------------------------------------------------------------------
function Exports({ api, job, onError }) {
  const [list, setList] = useState(null);
  const [format, setFormat] = useState("alpaca");
  const [finalOnly, setFinalOnly] = useState(false);
  const [roots, setRoots] = useState(true);
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  const evol = evolves(job);
  const load = () => api.get(`/exports?job_id=${job.id}`).then(setList).catch(onError);
  useEffect(() => { load(); }, [job.id]);
  async function create(e) {
    e.preventDefault();
    setBusy(true);
    setMessage("");
    try {
      const body = { job_id: job.id, format, ...(evol ? { final_only: finalOnly, include_roots: roots } : {}) };
      const made = await api.post("/exports", body);
      setMessage(`Export ${made.id} written: ${made.rows} examples, ${fmtBytes(made.bytes)}.`);
      load();
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  async function fetchFile(row) {
    try {
      await download(api, `/exports/${row.id}/download`, row.filename);
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    }
  }
  return html`<div class="exports">
    <form class="card" id="export-form" onSubmit=${create}>
      <h3>Export ${isActive(job) ? html`<span class="muted small">(a snapshot: the job still runs)</span>` : ""}</h3>
      <label>format <select id="export-format" value=${format} onChange=${(e) => setFormat(e.target.value)}>
        ${EXPORT_FORMATS.map((f) => html`<option value=${f}>${f}</option>`)}</select></label>
      ${evol && html`<label><input type="checkbox" checked=${finalOnly} onChange=${(e) => setFinalOnly(e.target.checked)} /> final generation only</label>
        <label><input type="checkbox" checked=${roots} onChange=${(e) => setRoots(e.target.checked)} /> include the starting pool</label>`}
      <button type="submit" id="export-create" disabled=${busy}>${busy ? "Writing…" : "Export"}</button>
      ${message && html`<p class="notice" role="status" id="export-message">${message}</p>`}
    </form>
    ${list && (list.items.length === 0 ? html`<p class="muted">No export of this job yet.</p>` : html`<table class="card" id="exports">
      <thead><tr><th>id</th><th>format</th><th>rows</th><th>size</th><th>created</th><th></th></tr></thead>
      <tbody>${list.items.map((row) => html`<tr key=${row.id}><td>${row.id}</td><td>${row.format}</td><td>${row.rows}</td>
        <td>${fmtBytes(row.bytes)}</td><td>${fmtTime(row.created_at)}</td>
        <td><button type="button" class="download" data-export=${row.id} onClick=${() => fetchFile(row)}>Download</button></td></tr>`)}</tbody>
    </table>`)}
  </div>`;
}
