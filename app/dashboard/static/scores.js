// LLM-judge scores: an example's scores (one decimal, the judge named on hover, an
// unparseable answer shown as such, never as a number), a judge's summary (mean and median
// per aspect, the digits 1-6 as bars, unparseable and failed answers), live while a scoring
// runs, and the "Score with a judge" action that asks for a `score` job. Everything is read
// as the API gives it (instances' `scores`, a job's counters and result, a dataset example's
// flat `scores`); nothing is worked out again here.
import { html, useState } from "./preact-htm.module.js";
import { go, isActive } from "./util.js";

export const ASPECTS = ["quality", "complexity"];
export const fmtJudged = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(1));
const byAspect = (a, b) => (a !== "quality") - (b !== "quality") || a.localeCompare(b);

function titleOf(aspect, s) {
  if (s.status === "ok" && s.score != null) {
    const how = s.from_logprobs ? "the expected score over the score tokens' probabilities" : "the digit answered";
    return `${aspect} by ${s.judge}: ${s.score} (${how}; answered ${s.parsed})`;
  }
  if (s.status === "unparseable") return `${aspect} by ${s.judge}: unparseable, the answer was ${JSON.stringify(s.raw)}`;
  return `${aspect} by ${s.judge}: the request failed`;
}

// One aspect of an instance as the results API gives it ({score, parsed, status, raw, judge, ...}).
export function ScoreValue({ aspect, score }) {
  const ok = score.status === "ok" && score.score != null;
  const text = ok ? fmtJudged(score.score) : score.status === "unparseable" ? "unparseable" : "failed";
  return html`<span class=${"judge-score " + score.status} data-aspect=${aspect} data-status=${score.status}
    title=${titleOf(aspect, score)}>${aspect} <strong class="value">${text}</strong></span>`;
}

// An instance's scores; `named` also writes the judge out (for the evidence, where a keyboard
// user reads it without hovering).
export function InstanceScores({ instance, named }) {
  const scores = instance.scores || {};
  const aspects = Object.keys(scores).sort(byAspect);
  if (!aspects.length) return null;
  const judges = Array.from(new Set(aspects.map((a) => scores[a].judge)));
  return html`<span class="judge-scores" data-instance=${instance.id}>
    ${aspects.map((a) => html`<${ScoreValue} key=${a} aspect=${a} score=${scores[a]} />`)}
    ${named && html`<span class="muted small judge-name">by ${judges.join(", ")}</span>`}</span>`;
}

// A dataset example's flat scores ({quality, complexity, judge, complexity_judge}): null is a
// score the judge did not give (an unparseable or failed answer).
export function ExampleScores({ scores }) {
  const s = scores || {};
  const aspects = ASPECTS.filter((a) => a in s);
  if (!aspects.length) return null;
  return html`<span class="judge-scores">${aspects.map((a) => {
    const judge = s[a + "_judge"] || s.judge;
    const none = s[a] === null || s[a] === undefined;
    return html`<span key=${a} class=${"judge-score " + (none ? "none" : "ok")} data-aspect=${a}
      title=${none ? `${a} by ${judge}: no score (the answer was unparseable or failed)` : `${a} by ${judge}: ${s[a]}`}>
      ${a} <strong class="value">${none ? "no score" : fmtJudged(s[a])}</strong></span>`;
  })}</span>`;
}

// --- a job's judge summary ------------------------------------------------------------------------
// The summary a finished scoring wrote: a score job's result, or a generation job's
// result.judge_scores (score_with_judge). {judge, examples, judged, <aspect>: {scored,
// unparseable, errors, mean, median, histogram}}
export function summaryOf(job) {
  const r = job.result || {};
  if (r.judge_scores) return r.judge_scores;
  if (typeof r.judge === "string" && "judged" in r) return r;
  return null;
}

export const judging = (job) => "judged" in (job.counters || {}) || summaryOf(job) !== null;

function Histogram({ aspect, histogram }) {
  const counts = [1, 2, 3, 4, 5, 6].map((d) => histogram[String(d)] || 0);
  const top = Math.max(1, ...counts);
  return html`<ol class="histogram" data-aspect=${aspect} aria-label=${`${aspect}: how often each digit 1-6 was answered`}>
    ${counts.map((n, i) => html`<li key=${i} data-digit=${i + 1} aria-label=${`${i + 1}: ${n}`}>
      <span class="count">${n}</span><span class="track"><span class="bar" style=${`height:${Math.round((n / top) * 100)}%`}></span></span>
      <span class="digit">${i + 1}</span></li>`)}
  </ol>`;
}

function Aspect({ aspect, a }) {
  return html`<div class="aspect-summary" data-aspect=${aspect}>
    <h4>${aspect}</h4>
    <dl>
      <dt title="of the scores 1-6 (each the judge's expected digit when log-probabilities are returned, so not a whole number); the bars count the digit it answered">mean / median</dt><dd class="mean-median">${a.mean == null ? "–" : a.mean.toFixed(2)} / ${a.median == null ? "–" : a.median.toFixed(2)}</dd>
      <dt>scored</dt><dd class="scored">${a.scored}</dd>
      <dt>unparseable</dt><dd class="unparseable">${a.unparseable}</dd>
      ${a.errors > 0 && html`<dt>failed</dt><dd class="errors">${a.errors}</dd>`}
    </dl>
    <${Histogram} aspect=${aspect} histogram=${a.histogram || {}} />
  </div>`;
}

// The "Judge scores" card: live from the counters while the judge works, then the summary.
// `rowsJob` is the job whose examples were scored (the links open its rows).
export function JudgeSummary({ job, rowsJob }) {
  const c = job.counters || {};
  const final = summaryOf(job);
  const live = isActive(job);
  const judge = (final && final.judge) || c.judge;
  const total = final ? final.examples : c.judge_examples;
  const judged = final ? final.judged : c.judged;
  const aspects = final ? Object.keys(final).filter((k) => final[k] && typeof final[k] === "object" && "histogram" in final[k]).sort(byAspect) : [];
  const quality = final && final.quality;
  const threshold = quality && quality.median != null ? Math.floor(quality.median * 10) / 10 : null;
  const rows = (params) => `#/jobs/${rowsJob}/rows?` + new URLSearchParams(params).toString();
  const unparseable = final ? aspects.reduce((n, a) => n + final[a].unparseable, 0) : c.judge_unparseable;
  const errors = final ? aspects.reduce((n, a) => n + final[a].errors, 0) : c.judge_errors;
  return html`<div class="card judge-summary" id="judge-summary" data-final=${final ? "yes" : "no"}>
    <h3>Judge scores ${live && html`<span class="live small" id="judge-live">live</span>`}</h3>
    <dl>
      <dt>judge</dt><dd id="judge-name">${judge ? html`<code>${judge}</code>` : html`<span class="muted">not known yet (the judge has not answered)</span>`}</dd>
      <dt>judged</dt><dd id="judge-judged">${judged ?? 0} of ${total ?? "?"} examples</dd>
      <dt>unparseable</dt><dd id="judge-unparseable">${unparseable ?? 0} <span class="muted">answers (not a score 1-6; kept as they were)</span></dd>
      ${(errors || 0) > 0 && html`<dt>failed</dt><dd id="judge-errors">${errors} <span class="muted">requests (asked again by a later scoring)</span></dd>`}
      ${"judge_llm_requests" in c && html`<dt>requests</dt><dd id="judge-requests">${c.judge_llm_requests} <span class="muted">(${c.judge_llm_errors ?? 0} errors)</span></dd>
        <dt>tokens</dt><dd id="judge-tokens">${c.judge_prompt_tokens ?? 0} prompt · ${c.judge_completion_tokens ?? 0} completion</dd>`}
      ${!final && ASPECTS.filter((a) => c["mean_" + a] != null).map((a) => html`<dt key=${a}>mean ${a}</dt>
        <dd class="live-mean" data-aspect=${a}>${c["mean_" + a].toFixed(2)} <span class="muted">(so far)</span></dd>`)}
    </dl>
    ${aspects.length > 0 && html`<div class="aspects">${aspects.map((a) => html`<${Aspect} key=${a} aspect=${a} a=${final[a]} />`)}</div>`}
    ${final && judge && rowsJob && html`<p class="judge-links-head">Job ${rowsJob}'s rows, by this judge:</p>
      <ul class="plain-list judge-links">
        ${threshold !== null && html`<li><a id="judge-rows-best" href=${rows({ fate: "accepted", min_quality: threshold, judge })}>quality ≥ ${threshold.toFixed(1)} (the median is ${quality.median.toFixed(2)})</a></li>`}
        <li><a id="judge-rows" href=${rows({ fate: "accepted", judge })}>every curated example, with its scores</a></li></ul>`}
  </div>`;
}

// --- the action: a `score` job on this finished generation job ------------------------------------
// `kind` is the score kind as GET /kinds describes it (its parameters' schema and defaults).
export function ScoreForm({ api, job, kind, onError, onNotice, onChanged, onClose }) {
  const props = kind.params_schema.properties || {};
  const d = kind.defaults || {};
  const choices = ((props.aspects || {}).items || {}).enum || ASPECTS;
  const [aspects, setAspects] = useState(d.aspects || choices);
  const [rescore, setRescore] = useState(!!d.rescore);
  const [model, setModel] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    onNotice("");
    const params = { aspects: choices.filter((a) => aspects.includes(a)) };
    if (rescore !== !!d.rescore) params.rescore = rescore;
    if (model.trim()) params.judge_model = model.trim();
    try {
      const made = await api.post("/jobs", { kind: kind.name, source_job_id: job.id, params });
      onChanged();
      go(["jobs", String(made.id)]);
    } catch (err) {
      onError(err);
      onNotice(err);
    } finally {
      setBusy(false);
    }
  }
  const toggle = (a, on) => setAspects(on ? [...aspects, a] : aspects.filter((x) => x !== a));
  return html`<form class="score-form inline-form" id="score-form" onSubmit=${submit} aria-label="score with a judge">
    <fieldset class="aspect-choice"><legend>aspects</legend>
      ${choices.map((a) => html`<label class="check" key=${a}><input type="checkbox" class="score-aspect" value=${a}
        checked=${aspects.includes(a)} onChange=${(e) => toggle(a, e.target.checked)} /> ${a}</label>`)}</fieldset>
    <label>judge model <input id="score-judge-model" value=${model} placeholder=${d.judge_model || "the configured judge"}
      onInput=${(e) => setModel(e.target.value)} /></label>
    <label class="check"><input type="checkbox" id="score-rescore" checked=${rescore} onChange=${(e) => setRescore(e.target.checked)} />
      ask again for examples this judge scored</label>
    <button type="submit" id="score-start" disabled=${busy}>${busy ? "Starting…" : "Start scoring"}</button>
    <button type="button" class="link" onClick=${onClose}>Close</button>
  </form>`;
}
