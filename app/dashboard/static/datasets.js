// Datasets (the /api/v1/datasets routes): the list; a dataset's versions with counts, content
// hash and tags (move `prod`), download, build now and charts; its rows (with the judge's
// quality and complexity when scored), reviewed into a new version without the rows marked
// as discarded; the diff of two versions; the schedule with its next fire times and history.
import { html, useCallback, useEffect, useState } from "./preact-htm.module.js";
import { download, Unreachable } from "./api.js";
import { fmtTime, go, isActive, usePoll } from "./util.js";
import { errorText, Pager } from "./jobs.js";
import { ChartBox, COLORS } from "./charts.js";
import { ExampleScores } from "./scores.js";
import { Turns } from "./turns.js";
import { Diversity } from "./diversity.js";

const PAGE = 25;
const FORMATS = ["alpaca", "messages", "prompt-completion"];
const EXT = { alpaca: "json", messages: "jsonl", "prompt-completion": "jsonl" };
const enc = encodeURIComponent;

export function DatasetsPage({ api, route, pollMs, onError }) {
  const name = route.parts[1];
  return name ? html`<${Dataset} key=${name} api=${api} name=${name} route=${route} pollMs=${pollMs} onError=${onError} />`
    : html`<${DatasetList} api=${api} onError=${onError} />`;
}

function DatasetList({ api, onError }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api.get("/datasets?limit=200").then(setList).catch((err) => { onError(err); setError(errorText(err)); });
  }, []);
  return html`<main class="datasets-page">
    <h2>Datasets ${list && html`<span class="muted">(${list.total})</span>`}</h2>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${list && list.total === 0 && html`<section class="card empty" id="datasets-empty">
      <p>No dataset yet. A dataset is a named, versioned collection that grows by builds of a recipe (seed sets and
        generation steps). Create one with <code>sprout datasets create</code> or <code>POST /api/v1/datasets</code>
        (see <a href="/docs">/docs</a>); its versions, diffs, tags and schedule then show here.</p></section>`}
    ${list && list.total > 0 && html`<div class="table-wrap card"><table id="datasets">
      <thead><tr><th>name</th><th>latest</th><th>rows</th><th>schedule</th><th>updated</th></tr></thead>
      <tbody>${list.items.map((d) => html`<tr key=${d.id}>
        <td><a href=${"#/datasets/" + enc(d.name)} data-dataset=${d.name}>${d.name}</a>${d.description && html`<div class="muted small">${d.description}</div>`}</td>
        <td>${d.latest ? "v" + d.latest.number : "–"}</td><td>${d.latest ? d.latest.row_count : 0}</td>
        <td>${d.scheduled ? "yes" : "–"}</td><td>${fmtTime(d.updated_at)}</td></tr>`)}</tbody>
    </table></div>`}
  </main>`;
}

const TABS = [["versions", "Versions"], ["rows", "Review rows"], ["diff", "Diff"], ["schedule", "Schedule"]];

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
  // a build started here is followed until it finishes; then the versions are read again
  const followBuild = useCallback(async () => {
    const job = await api.get(`/jobs/${build.id}`);
    setBuild(job);
    if (!isActive(job)) load();
  }, [api, build && build.id]);
  usePoll(followBuild, pollMs, !!build && isActive(build), [build && build.id]);

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
        ${Object.entries(dataset.tags).map(([t, n]) => html` <code class="tag" data-tag=${t}>${t} → v${n}</code>`)}</p>
      <div class="actions">
        <button type="button" id="build-now" disabled=${build && isActive(build)} onClick=${buildNow}>Build now</button>
        ${build && html`<span class="notice" id="build-status">build <a href=${"#/jobs/" + build.id}>job ${build.id}</a>: ${build.status}</span>`}
      </div>
      ${notice && html`<p class="error" role="alert">${notice}</p>`}
    </section>
    <nav class="tabs" role="tablist" aria-label="dataset views">
      ${TABS.map(([t, label]) => html`<a role="tab" id=${"dtab-" + t} aria-selected=${tab === t ? "true" : "false"} class=${tab === t ? "on" : ""}
        href=${`#/datasets/${enc(name)}/${t}`}>${label}</a>`)}
    </nav>
    ${tab === "rows" ? html`<${Review} api=${api} name=${name} dataset=${dataset} params=${route.params} onError=${onError} onCommitted=${load} />`
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
    <div class="table-wrap card"><table class="versions" id="versions">
      <thead><tr><th>version</th><th>made by</th><th>created</th><th>rows</th><th>added / removed</th><th>content hash</th><th>tags</th><th></th></tr></thead>
      <tbody>${versions.map((v) => html`<tr key=${v.number} data-version=${v.number}>
        <td>v${v.number}</td>
        <td>${v.kind}${v.build_job_id ? html` <a href=${"#/jobs/" + v.build_job_id}>job ${v.build_job_id}</a>` : ""}</td>
        <td>${fmtTime(v.created_at)}</td><td>${v.row_count}</td>
        <td>+${v.counts.added ?? 0} / −${v.counts.removed ?? 0}${v.counts.corrected ? ` (${v.counts.corrected} corrected)` : ""}</td>
        <td class="hash" title=${v.content_hash}>${v.content_hash.slice(0, 12)}…</td>
        <td>${v.tags.map((t) => html`<code class="tag">${t}</code> `)}</td>
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

// --- review: mark rows as discarded (with a reason), then commit a version without them ------------
function useMarks(name) {
  const store = "sprout.discard." + name;
  const [marks, setMarks] = useState(() => JSON.parse(localStorage.getItem(store) || "{}"));
  const save = (next) => {
    setMarks(next);
    if (Object.keys(next).length) localStorage.setItem(store, JSON.stringify(next));
    else localStorage.removeItem(store);
  };
  return [marks, save];
}

function Review({ api, name, dataset, params, onError, onCommitted }) {
  const latest = dataset.latest ? dataset.latest.number : null;
  const ref = params.v || (latest ? String(latest) : "latest");
  const number = Math.max(1, Number(params.page) || 1);
  const [page, setPage] = useState(null);
  const [error, setError] = useState("");
  const [marks, setMarks] = useMarks(name);
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  const onLatest = latest !== null && Number(ref) === latest;
  useEffect(() => {
    if (latest === null) return;
    api.get(`/datasets/${enc(name)}/versions/${enc(ref)}/rows?limit=${PAGE}&offset=${(number - 1) * PAGE}`)
      .then((p) => { setPage(p); setError(""); }).catch((err) => { onError(err); setError(errorText(err)); });
  }, [name, ref, number, latest]);
  const marked = Object.entries(marks);
  async function commit() {
    setBusy(true);
    setMessage("");
    try {
      const version = await api.post(`/datasets/${enc(name)}/versions`,
        { remove: { ids: marked.map(([id]) => Number(id)) }, expected_latest: latest });
      setMarks({});
      setMessage(`Version ${version.number}: ${version.row_count} rows (${version.counts.removed ?? marked.length} discarded).`);
      onCommitted();
      go(["datasets", name, "rows"], { v: version.number });
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  if (latest === null) return html`<p class="muted card">No version yet.</p>`;
  const pages = page ? Math.max(1, Math.ceil(page.total / PAGE)) : 1;
  return html`<div class="review">
    <p class="muted">${onLatest ? `Rows of v${latest} (the latest). Mark the ones to discard, with a reason; they leave the dataset in a new version.`
      : html`Rows of v${ref}. Only the latest version can be curated: <a href=${`#/datasets/${enc(name)}/rows`}>review v${latest}</a>.`}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${page && html`<p class="muted" id="review-summary">${page.total === 0 ? "No rows." : `Rows ${page.offset + 1}–${page.offset + page.items.length} of ${page.total}`}</p>
      <ol class="rows" id="dataset-rows">${page.items.map((row) => html`<${ExampleRow} key=${row.id} row=${row} reason=${marks[row.id]}
        canMark=${onLatest} onMark=${(reason) => { const next = { ...marks }; if (reason === null) delete next[row.id]; else next[row.id] = reason; setMarks(next); }} />`)}</ol>
      ${pages > 1 && html`<${Pager} number=${number} pages=${pages} onPage=${(n) => go(["datasets", name, "rows"], { ...params, page: n })} />`}`}
    ${(marked.length > 0 || message) && html`<div class="review-tray" id="review-tray">
      ${marked.length > 0 && html`<p><strong>${marked.length} row${marked.length > 1 ? "s" : ""} marked to discard</strong></p>
        <ul class="small">${marked.map(([id, reason]) => html`<li key=${id}>#${id}: ${reason || html`<span class="muted">no reason given</span>`}</li>`)}</ul>
        <div class="actions"><button type="button" id="commit-review" disabled=${busy || !onLatest} onClick=${commit}>Create a version without them</button>
          <button type="button" class="link" onClick=${() => setMarks({})}>Clear the marks</button></div>`}
      ${message && html`<p class="notice" role="status" id="review-message">${message}</p>`}
    </div>`}
  </div>`;
}

function ExampleRow({ row, reason, canMark, onMark }) {
  const marked = reason !== undefined;
  return html`<li class=${"row example" + (marked ? " marked" : "")} data-example=${row.id}>
    <div><span class="seq">#${row.id}</span> <span class="muted small">${row.method} · added in v${row.added_in}</span>
      ${row.scores && row.scores.max_rouge_l != null && html` <span class="score">R-L ${Number(row.scores.max_rouge_l).toFixed(3)}</span>`}
      <${ExampleScores} scores=${row.scores} /></div>
    <p class="text"><strong>${row.instruction}</strong></p>
    ${row.input && html`<pre class="text-box">${row.input}</pre>`}
    <pre class="text-box">${row.output}</pre>
    <${Turns} turns=${row.turns} />
    ${canMark && html`<div class="inline-form">
      <label class="check"><input type="checkbox" class="discard" checked=${marked} onChange=${(e) => onMark(e.target.checked ? "" : null)} /> discard</label>
      ${marked && html`<label>reason <input class="discard-reason" value=${reason} placeholder="why it goes"
        onInput=${(e) => onMark(e.target.value)} /></label>`}
    </div>`}
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
      <ol class="rows" id="diff-rows">${diff.rows.map((r) => html`<li key=${r.change + r.id} class=${"row " + (r.change === "added" ? "accepted" : "rejected")} data-change=${r.change}>
        <div class="example"><span class=${"fate " + (r.change === "added" ? "accepted" : "rejected")}>${r.change}</span> <span class="seq">#${r.id}</span>
          <p class="text">${r.instruction}</p></div></li>`)}</ol>
      ${pages > 1 && html`<${Pager} number=${number} pages=${pages} onPage=${(n) => go(["datasets", name, "diff"], { from, to, page: n })} />`}`}
  </div>`;
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
  if (!schedule) return html`<p class="muted">Loading the schedule…</p>`;
  return html`<div class="schedule">
    <section class="card" id="schedule-state">
      <h3>Schedule</h3>
      ${schedule.cron ? html`<dl>
          <dt>cron</dt><dd><code>${schedule.cron}</code> (${schedule.timezone})</dd>
          <dt>missed fires</dt><dd>${schedule.missed_fire_policy}</dd>
          <dt>state</dt><dd id="schedule-paused">${schedule.paused ? html`paused: ${schedule.pause_reason}` : "active"}</dd>
          <dt>next fires</dt><dd><ol id="next-fires">${schedule.next_fires.map((t) => html`<li>${fmtTime(t)}</li>`)}</ol>
            ${schedule.next_fires.length === 0 && html`<span class="muted">none while paused</span>`}</dd>
        </dl>
        <div class="actions">${schedule.paused
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
