// Datasets (the /api/v1/datasets routes): the list and a create form (recipe.js); a dataset's
// versions with counts, content hash and tags (move `prod`), download in every format, build
// now (refused while a build runs; a running build and its steps shown, after a reload too) and
// charts; the review mode (review.js); its rows with their review status; the diff of two
// versions with the reasons rows left; the recipe, seen and edited; the schedule.
import { html, useCallback, useEffect, useState } from "./preact-htm.module.js";
import { download, Unreachable } from "./api.js";
import { fmtTime, go, isActive, usePoll } from "./util.js";
import { errorText, Pager } from "./jobs.js";
import { ChartBox, COLORS } from "./charts.js";
import { ExampleScores } from "./scores.js";
import { Turns } from "./turns.js";
import { Diversity } from "./diversity.js";
import { ReviewMode } from "./review.js";
import { CreateDataset, RecipeView } from "./recipe.js";

const PAGE = 25;
const FORMATS = ["alpaca", "messages", "prompt-completion", "sharegpt"];  // every format a version downloads in
const EXT = { alpaca: "json", messages: "jsonl", "prompt-completion": "jsonl", sharegpt: "jsonl" };
const enc = encodeURIComponent;

export function DatasetsPage({ api, route, pollMs, onError }) {
  const name = route.parts[1];
  const [owner, setOwner] = useState("");
  useEffect(() => { api.get("/me").then((me) => setOwner(me.owner)).catch(onError); }, []);
  if (!name && route.params.create) return html`<${CreateDataset} api=${api} owner=${owner} onError=${onError} />`;
  return name ? html`<${Dataset} key=${name} api=${api} name=${name} route=${route} pollMs=${pollMs} onError=${onError} />`
    : html`<${DatasetList} api=${api} owner=${owner} onError=${onError} />`;
}

function DatasetList({ api, owner, onError }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api.get("/datasets?limit=200").then(setList).catch((err) => { onError(err); setError(errorText(err)); });
  }, []);
  return html`<main class="datasets-page">
    <div class="title-line"><h2>Datasets ${list && html`<span class="muted">(${list.total})</span>`}</h2>
      <a class="button" id="new-dataset-link" href="#/datasets?create=1">New dataset</a></div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${list && list.total === 0 && html`<section class="card empty" id="datasets-empty">
      <p>No dataset yet. A dataset is a named, versioned collection that grows by builds of a recipe (seed sets and
        generation steps). <a href="#/datasets?create=1">Create one here</a>, or on the server with${" "}
        <code>sprout datasets --owner ${owner || "OWNER"} create</code>${" "}(the datasets of this key's owner${owner ? `, ${owner},` : ""} show here);
        its versions, reviews, diffs, tags and schedule then show here.</p></section>`}
    ${list && list.total > 0 && html`<div class="table-wrap card"><table id="datasets">
      <thead><tr><th>name</th><th>latest</th><th>rows</th><th>schedule</th><th>updated</th></tr></thead>
      <tbody>${list.items.map((d) => html`<tr key=${d.id}>
        <td><a href=${"#/datasets/" + enc(d.name)} data-dataset=${d.name}>${d.name}</a>${d.description && html`<div class="muted small">${d.description}</div>`}</td>
        <td>${d.latest ? "v" + d.latest.number : "–"}</td><td>${d.latest ? d.latest.row_count : 0}</td>
        <td>${d.scheduled ? "yes" : "–"}</td><td>${fmtTime(d.updated_at)}</td></tr>`)}</tbody>
    </table></div>`}
  </main>`;
}

const TABS = [["versions", "Versions"], ["review", "Review"], ["rows", "Rows"], ["diff", "Diff"], ["recipe", "Recipe"],
  ["schedule", "Schedule"]];

function Dataset({ api, name, route, pollMs, onError }) {
  const [dataset, setDataset] = useState(null);
  const [versions, setVersions] = useState(null);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const [build, setBuild] = useState(null);
  const tab = route.parts[2] || "versions";
  const base = `/datasets/${enc(name)}`;
  const load = useCallback(async () => {
    try {
      const [d, v] = await Promise.all([api.get(base), api.get(`${base}/versions?limit=200`)]);
      setDataset(d);
      setVersions(v);
      setError("");
    } catch (err) {
      onError(err);
      if (!(err instanceof Unreachable)) setError(errorText(err));
    }
  }, [api, name]);
  useEffect(() => { load(); }, [name]);
  // a build queued or running (started here, elsewhere, or before a reload) is followed until it finishes
  useEffect(() => {
    const running = dataset && dataset.builds_in_progress && dataset.builds_in_progress[0];
    if (running && (!build || build.id !== running)) api.get(`/jobs/${running}`).then(setBuild).catch(onError);
  }, [dataset && (dataset.builds_in_progress || []).join()]);
  const followBuild = useCallback(async () => {
    const job = await api.get(`/jobs/${build.id}`);
    setBuild(job);
    if (!isActive(job)) load();
  }, [api, build && build.id]);
  usePoll(followBuild, pollMs, !!build && isActive(build), [build && build.id]);

  async function removeTag(tag) {
    setNotice("");
    try {
      await api.del(`${base}/tags/${enc(tag)}`);
      load();
    } catch (err) {
      onError(err);
      setNotice(errorText(err));
    }
  }
  async function buildNow() {
    setNotice("");
    try {
      setBuild(await api.post(`${base}/builds`));
    } catch (err) {
      onError(err);
      setNotice(errorText(err));
    }
  }
  if (error) return html`<main class="datasets-page"><a href="#/datasets">← All datasets</a><p class="error" role="alert">${error}</p></main>`;
  if (!dataset || !versions) return html`<main class="datasets-page"><p class="muted">Loading ${name}…</p></main>`;
  const latest = dataset.latest;
  return html`<main class="datasets-page" data-dataset=${name}>
    <a href="#/datasets">← All datasets</a>
    <section class="card">
      <div class="title-line"><h2>${dataset.name}</h2>
        <span class="muted">${latest ? `v${latest.number} · ${latest.row_count} rows` : "no version yet"}</span></div>
      ${dataset.description && html`<p>${dataset.description}</p>`}
      <p class="muted small">${dataset.license ? `license ${dataset.license} · ` : ""}tags:
        ${Object.entries(dataset.tags).map(([t, n]) => html` <code class="tag" data-tag=${t}>${t} → v${n}</code>${t !== "latest" && html`<button type="button"
          class="link small remove-tag" data-remove-tag=${t} aria-label=${`remove the tag ${t}`} onClick=${() => removeTag(t)}>×</button>`}`)}</p>
      <div class="actions">
        <button type="button" id="build-now" disabled=${build && isActive(build)} onClick=${buildNow}
          title=${build && isActive(build) ? "a build is already queued or running" : "run the recipe once: a new version"}>Build now</button>
        ${build && html`<${BuildStatus} api=${api} build=${build} />`}
      </div>
      ${notice && html`<p class="error" role="alert">${notice}</p>`}
    </section>
    <nav class="tabs" role="tablist" aria-label="dataset views">
      ${TABS.map(([t, label]) => html`<a role="tab" id=${"dtab-" + t} aria-selected=${tab === t ? "true" : "false"} class=${tab === t ? "on" : ""}
        href=${`#/datasets/${enc(name)}/${t}`}>${label}</a>`)}
    </nav>
    ${tab === "review" ? html`<${ReviewMode} key=${dataset.latest ? dataset.latest.number : 0} api=${api} name=${name} dataset=${dataset} params=${route.params} onError=${onError} onCommitted=${load} />`
      : tab === "rows" ? html`<${Rows} api=${api} name=${name} dataset=${dataset} params=${route.params} onError=${onError} />`
      : tab === "recipe" ? html`<${RecipeView} api=${api} name=${name} dataset=${dataset} params=${route.params} onError=${onError} onSaved=${load} />`
      : tab === "diff" ? html`<${Diff} api=${api} name=${name} versions=${versions.items} params=${route.params} onError=${onError} />`
      : tab === "schedule" ? html`<${Schedule} api=${api} name=${name} onError=${onError} />`
      : html`<${Versions} api=${api} name=${name} dataset=${dataset} versions=${versions.items} onError=${onError} onChanged=${load} />`}
  </main>`;
}

function Versions({ api, name, dataset, versions, onError, onChanged }) {
  const [format, setFormat] = useState(((dataset.recipe || {}).export_formats || ["alpaca"])[0]);
  const [tag, setTag] = useState("prod");
  const [target, setTarget] = useState(versions.length ? String(versions[0].number) : "");
  const [message, setMessage] = useState("");
  const base = `/datasets/${enc(name)}`;
  async function moveTag(e) {
    e.preventDefault();
    try {
      const out = await api.put(`${base}/tags/${enc(tag.trim())}`, { version: Number(target) });
      setMessage(`${out.name} → v${out.version}`);
      onChanged();
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    }
  }
  async function fetchVersion(number) {
    try {
      await download(api, `${base}/versions/${number}/download?format=${format}`, `${name}-v${number}.${EXT[format]}`);
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    }
  }
  const chronological = [...versions].reverse();
  const builds = chronological.filter((v) => v.kind === "build");
  if (!versions.length) return html`<p class="muted card" id="no-versions">No version yet: build one (Build now, or the schedule).</p>`;
  return html`<div class="versions-view">
    <form class="card inline-form" id="tag-form" onSubmit=${moveTag}>
      <label>tag <input id="tag-name" value=${tag} onInput=${(e) => setTag(e.target.value)} /></label>
      <label>version <select id="tag-version" value=${target} onChange=${(e) => setTarget(e.target.value)}>
        ${versions.map((v) => html`<option value=${String(v.number)}>v${v.number}</option>`)}</select></label>
      <button type="submit" id="move-tag">Point the tag here</button>
      <label>download format <select id="download-format" value=${format} onChange=${(e) => setFormat(e.target.value)}>
        ${FORMATS.map((f) => html`<option value=${f}>${f}</option>`)}</select></label>
      ${message && html`<p class="notice" role="status" id="versions-message">${message}</p>`}
    </form>
    <div class="table-wrap card versions-wrap"><table class="versions stack-narrow" id="versions">
      <thead><tr><th>version</th><th>made by</th><th>created</th><th>rows</th><th>added / removed</th><th title="distinct-2 of the instructions · mean of each one's max ROUGE-L to the rest (computed at commit)">diversity</th><th>content hash</th><th>tags</th><th></th></tr></thead>
      <tbody>${versions.map((v) => html`<tr key=${v.number} data-version=${v.number}>
        <td data-label="version">v${v.number}</td>
        <td data-label="made by">${v.kind}${v.build_job_id ? html` <a href=${"#/jobs/" + v.build_job_id}>job ${v.build_job_id}</a>` : ""}</td>
        <td data-label="created">${fmtTime(v.created_at)}</td><td data-label="rows">${v.row_count}</td>
        <td data-label="added / removed">+${v.counts.added ?? 0} / −${v.counts.removed ?? 0}${v.counts.corrected ? ` (${v.counts.corrected} corrected)` : ""}</td>
        <td data-label="diversity" class="diversity-cell">${spread(v.counts.diversity)}</td>
        <td data-label="content hash" class="hash" title=${v.content_hash}>${v.content_hash.slice(0, 12)}…</td>
        <td data-label="tags" class="tags-cell">${v.tags.map((t) => html`<code class="tag">${t}</code> `)}</td>
        <td class="actions-cell"><button type="button" class="small download-version" data-version=${v.number} onClick=${() => fetchVersion(v.number)}>Download</button>
          <a href=${`#/datasets/${enc(name)}/rows?v=${v.number}`}>rows</a>
          ${v.parent && html` <a href=${`#/datasets/${enc(name)}/diff?from=${v.parent}&to=${v.number}`}>diff</a>`}</td>
      </tr>`)}</tbody>
    </table></div>
    <div class="chart-grid">
      <${ChartBox} id="chart-size" title="Size by version" note="rows"
        config=${{ type: "bar", data: { labels: chronological.map((v) => "v" + v.number),
          datasets: [{ label: "rows", data: chronological.map((v) => v.row_count), backgroundColor: COLORS.GREEN }] },
          options: { plugins: { legend: { display: false } } } }} />
      <${ChartBox} id="chart-builds" title="Builds over time" note="rows each build added"
        empty=${builds.length ? "" : "No build yet."}
        config=${{ type: "bar", data: { labels: builds.map((v) => fmtTime(v.created_at)),
          datasets: [{ label: "rows added", data: builds.map((v) => v.counts.added ?? 0), backgroundColor: COLORS.BLUE }] },
          options: { plugins: { legend: { display: false } } } }} />
    </div>
    ${versions.length > 0 && html`<${Diversity} api=${api} path=${`${base}/versions/${versions[0].number}/diversity`} title=${`Diversity of v${versions[0].number}`} />`}
  </div>`;
}

// a version's diversity as its commit stored it (counts.diversity): distinct-2 and mean max ROUGE-L,
// with a note when the commit computed it over a sample
function spread(d) {
  if (!d || !d.overall) return "–";
  const f = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));
  const n = (x) => Number(x).toLocaleString("en");
  const figures = `d-2 ${f(d.overall.distinct_2)} · ROUGE-L ${f(d.overall.max_rouge_l.mean)}`;
  // a large version's report is over a seeded sample of its instructions (counts.diversity.sampled)
  if (!d.sampled) return figures;
  return html`${figures}<br /><span class="small muted diversity-sampled">sampled: ${n(d.sampled.rows)} of ${n(d.sampled.of)} rows</span>`;
}

// --- a running build: its status, and its step jobs with theirs ---------------------------------------
function BuildStatus({ api, build }) {
  const steps = ((build.result || {}).steps || []);
  const c = build.counters || {};
  const made = (build.result || {}).version;
  return html`<div class="notice" id="build-status" data-status=${build.status}>build <a href=${"#/jobs/" + build.id}>job ${build.id}</a>: ${build.status}${isActive(build) && c.steps ? ` · step ${Math.max(1, c.step || 1)} of ${c.steps}` : ""}${made ? html` · made <a href=${`#/datasets/${enc(build.result.dataset)}/diff?from=${Math.max(1, made - 1)}&to=${made}`}>v${made}</a>` : ""}
    ${steps.length > 0 && html`<ol class="build-steps small" id="build-steps">${steps.map((id, i) => html`<li key=${id}>step ${i + 1}: <a href=${"#/jobs/" + id}>job ${id}</a></li>`)}</ol>`}
  </div>`;
}

// --- rows: a version's rows, with the review decision on each (decide them in the Review tab) -------
function Rows({ api, name, dataset, params, onError }) {
  const latest = dataset.latest ? dataset.latest.number : null;
  const ref = params.v || (latest ? String(latest) : "latest");
  const number = Math.max(1, Number(params.page) || 1);
  const [page, setPage] = useState(null);
  const [error, setError] = useState("");
  const onLatest = latest !== null && Number(ref) === latest;
  useEffect(() => {
    if (latest === null) return;
    api.get(`/datasets/${enc(name)}/versions/${enc(ref)}/rows?limit=${PAGE}&offset=${(number - 1) * PAGE}`)
      .then((p) => { setPage(p); setError(""); }).catch((err) => { onError(err); setError(errorText(err)); });
  }, [name, ref, number, latest]);
  if (latest === null) return html`<p class="muted card">No version yet.</p>`;
  const pages = page ? Math.max(1, Math.ceil(page.total / PAGE)) : 1;
  return html`<div class="rows-view">
    <p class="muted">${onLatest ? html`Rows of v${latest} (the latest), with their review status. <a href=${`#/datasets/${enc(name)}/review`}>Review them</a> one at a time.`
      : html`Rows of v${ref}. Only the latest version is reviewed: <a href=${`#/datasets/${enc(name)}/rows`}>rows of v${latest}</a>.`}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${page && html`<p class="muted" id="rows-summary">${page.total === 0 ? "No rows." : `Rows ${page.offset + 1}–${page.offset + page.items.length} of ${page.total}`}</p>
      <ol class="rows" id="dataset-rows">${page.items.map((row, i) => html`<${ExampleRow} key=${row.id} row=${row}
        reviewHref=${onLatest ? `#/datasets/${enc(name)}/review?row=${page.offset + i + 1}` : null} />`)}</ol>
      ${pages > 1 && html`<${Pager} number=${number} pages=${pages} onPage=${(n) => go(["datasets", name, "rows"], { ...params, page: n })} />`}`}
  </div>`;
}

function ReviewBadge({ review }) {
  if (!review) return html`<span class="review-badge unreviewed">unreviewed</span>`;
  return html`<span class=${"review-badge " + review.status} title=${`${review.reviewer}, ${fmtTime(review.reviewed_at)}`}>${review.status}${review.reason ? `: ${review.reason}` : ""}${review.rating ? ` · ${review.rating}/5` : ""}</span>`;
}

function ExampleRow({ row, reviewHref }) {
  return html`<li class=${"row example" + (row.review ? " " + row.review.status : "")} data-example=${row.id} data-status=${row.review ? row.review.status : "unreviewed"}>
    <div><span class="seq">#${row.id}</span> <span class="muted small">${row.method} · added in v${row.added_in}</span>
      ${row.scores && row.scores.max_rouge_l != null && html` <span class="score">R-L ${Number(row.scores.max_rouge_l).toFixed(3)}</span>`}
      <${ExampleScores} scores=${row.scores} /> <${ReviewBadge} review=${row.review} />
      ${reviewHref && html` <a class="small" href=${reviewHref}>review</a>`}</div>
    <p class="text"><strong>${row.instruction}</strong></p>
    ${row.input && html`<div class="small muted">input</div><pre class="text-box">${row.input}</pre>`}
    <div class="small muted">output</div><pre class="text-box">${row.output}</pre>
    <${Turns} turns=${row.turns} />
  </li>`;
}

// --- diff --------------------------------------------------------------------------------------------
function Diff({ api, name, versions, params, onError }) {
  const numbers = versions.map((v) => v.number);
  const to = params.to || (numbers[0] ? String(numbers[0]) : "");
  const from = params.from || (numbers[1] ? String(numbers[1]) : to);
  const number = Math.max(1, Number(params.page) || 1);
  const [diff, setDiff] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!from || !to) return;
    api.get(`/datasets/${enc(name)}/diff?from=${enc(from)}&to=${enc(to)}&limit=${PAGE}&offset=${(number - 1) * PAGE}`)
      .then((d) => { setDiff(d); setError(""); }).catch((err) => { onError(err); setError(errorText(err)); });
  }, [name, from, to, number]);
  const set = (changes) => go(["datasets", name, "diff"], { from, to, ...changes, page: undefined });
  if (!numbers.length) return html`<p class="muted card">No version yet.</p>`;
  const pages = diff ? Math.max(1, Math.ceil(diff.total / PAGE)) : 1;
  const review = ((versions.find((v) => String(v.number) === String(to)) || {}).counts || {}).review;
  return html`<div class="diff">
    <form class="card inline-form" onSubmit=${(e) => e.preventDefault()}>
      <label>from <select id="diff-from" value=${from} onChange=${(e) => set({ from: e.target.value })}>
        ${numbers.map((n) => html`<option value=${String(n)}>v${n}</option>`)}</select></label>
      <label>to <select id="diff-to" value=${to} onChange=${(e) => set({ to: e.target.value })}>
        ${numbers.map((n) => html`<option value=${String(n)}>v${n}</option>`)}</select></label>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${diff && html`<p id="diff-summary"><strong>v${diff.from} → v${diff.to}</strong>: +${diff.added} added, −${diff.removed} removed
      ${diff.corrected ? `, ${diff.corrected} corrected` : ""} · ${diff.content_changed ? "content changed" : "same content"}</p>
      ${review && html`<p class="small" id="diff-review">v${to}'s review: ${review.rejected} rejected, ${review.edited} edited, ${review.accepted} accepted
        by ${(review.reviewers || []).join(", ")}${Object.keys(review.reasons || {}).length ? " · reasons: " + Object.entries(review.reasons).map(([k, n]) => `${k} (${n})`).join(", ") : ""}</p>`}
      <ol class="rows" id="diff-rows">${diff.rows.map((r) => html`<li key=${r.change + r.id} class=${"row " + (r.change === "added" ? "accepted" : "rejected")} data-change=${r.change} data-example=${r.id}>
        <div class="example"><span class=${"fate " + (r.change === "added" ? "accepted" : "rejected")}>${r.change}</span> <span class="seq">#${r.id}</span>
          ${r.replaces_id && html` <span class="muted small">edit of #${r.replaces_id}</span>`}
          ${r.review && html` <span class=${"review-badge " + r.review.status}>${r.review.status === "edited" ? "edited (the original text)" : r.review.status}${r.review.reason ? `: ${r.review.reason}` : ""}</span>`}
          <p class="text">${r.instruction}</p>
          ${r.input && html`<div class="small muted">input</div><pre class="text-box">${r.input}</pre>`}
          <div class="small muted">output</div><pre class="text-box">${r.output}</pre></div></li>`)}</ol>
      ${pages > 1 && html`<${Pager} number=${number} pages=${pages} onPage=${(n) => go(["datasets", name, "diff"], { from, to, page: n })} />`}`}
  </div>`;
}

// a fire time in the schedule's own zone, named (the browser's zone may differ)
function inZone(iso, tz) {
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: tz, dateStyle: "medium", timeStyle: "short" }) + " " + tz;
  } catch {
    return fmtTime(iso) + " (your browser's time)";
  }
}

// --- schedule ------------------------------------------------------------------------------------------
function Schedule({ api, name, onError }) {
  const [schedule, setSchedule] = useState(null);
  const [form, setForm] = useState({ cron: "0 3 * * *", timezone: "UTC", missed_fire_policy: "skip" });
  const [reason, setReason] = useState("");
  const [message, setMessage] = useState("");
  const base = `/datasets/${enc(name)}/schedule`;
  const load = () => api.get(base).then((s) => {
    setSchedule(s);
    if (s.cron) setForm({ cron: s.cron, timezone: s.timezone, missed_fire_policy: s.missed_fire_policy });
  }).catch(onError);
  useEffect(() => { load(); }, [name]);
  async function call(promise, done) {
    setMessage("");
    try {
      setSchedule(await promise);
      setMessage(done);
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    }
  }
  async function removeSchedule() {
    setMessage("");
    try {
      await api.del(base);
      await load();
      setMessage("Schedule removed: builds run only when asked.");
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    }
  }
  if (!schedule) return html`<p class="muted">Loading the schedule…</p>`;
  return html`<div class="schedule">
    <section class="card" id="schedule-state">
      <h3>Schedule</h3>
      ${schedule.cron ? html`<dl>
          <dt>cron</dt><dd><code>${schedule.cron}</code> (${schedule.timezone})</dd>
          <dt>missed fires</dt><dd>${schedule.missed_fire_policy}</dd>
          <dt>state</dt><dd id="schedule-paused">${schedule.paused ? html`paused: ${schedule.pause_reason}` : "active"}</dd>
          <dt>next fires</dt><dd><ol id="next-fires">${schedule.next_fires.map((t) => html`<li>${inZone(t, schedule.timezone)}</li>`)}</ol>
            ${schedule.next_fires.length === 0 && html`<span class="muted">none while paused</span>`}</dd>
        </dl>
        <div class="actions"><button type="button" class="danger" id="remove-schedule" onClick=${removeSchedule}>Remove the schedule</button>${schedule.paused
          ? html`<button type="button" id="resume-schedule" onClick=${() => call(api.post(`${base}/resume`), "Resumed.")}>Resume</button>`
          : html`<label class="inline-form">reason <input id="pause-reason" value=${reason} placeholder="paused by request" onInput=${(e) => setReason(e.target.value)} /></label>
            <button type="button" id="pause-schedule" onClick=${() => call(api.post(`${base}/pause`, reason.trim() ? { reason: reason.trim() } : undefined), "Paused.")}>Pause</button>`}</div>`
      : html`<p class="muted" id="no-schedule">No schedule: builds run only when asked.</p>`}
      ${message && html`<p class="notice" role="status" id="schedule-message">${message}</p>`}
    </section>
    <form class="card inline-form" id="schedule-form" onSubmit=${(e) => { e.preventDefault(); call(api.put(base, form), "Schedule set."); }}>
      <label>cron <input id="schedule-cron" value=${form.cron} onInput=${(e) => setForm({ ...form, cron: e.target.value })} /></label>
      <label>time zone <input id="schedule-timezone" value=${form.timezone} onInput=${(e) => setForm({ ...form, timezone: e.target.value })} /></label>
      <label>missed fires <select id="schedule-policy" value=${form.missed_fire_policy} onChange=${(e) => setForm({ ...form, missed_fire_policy: e.target.value })}>
        <option value="skip">skip</option><option value="run_once">run once</option></select></label>
      <button type="submit" id="set-schedule">${schedule.cron ? "Replace the schedule" : "Set the schedule"}</button>
    </form>
    <section class="card">
      <h3>Fire history</h3>
      ${schedule.history.length === 0 ? html`<p class="muted" id="no-fires">No fire yet.</p>` : html`<div class="table-wrap"><table id="fires">
        <thead><tr><th>due</th><th>status</th><th>reason</th><th>build</th></tr></thead>
        <tbody>${schedule.history.map((f) => html`<tr key=${f.due_at}><td>${fmtTime(f.due_at)}</td><td>${f.status}</td><td>${f.reason || ""}</td>
          <td>${f.job_id ? html`<a href=${"#/jobs/" + f.job_id}>job ${f.job_id}</a>` : ""}</td></tr>`)}</tbody></table></div>`}
    </section>
  </div>`;
}
