// What a generation job's counters and result say about its model servers and its spending:
// the "Model server" panel (requests, tokens and the share from cache, busy share,
// utilisation, each endpoint's concurrency limit, tokens and cost per accepted example, the
// last model-server errors), the budget stop, and the contamination report. Read from the
// job as GET /jobs/{id} returns it, so the panel is live while the job is polled.
import { html } from "./preact-htm.module.js";
import { fmtPercent, fmtTime, isActive } from "./util.js";

// One name for one figure: the tokens of every model request (prompt + completion, every
// role) over the accepted examples, as the CLI summary's "tokens per accepted example".
export const TOKENS_PER_ACCEPTED = "tokens per accepted example";

const tokens = (c) => (c.prompt_tokens || 0) + (c.completion_tokens || 0);

// Tokens and cost per accepted example: the job's result once it has ended (the jobs layer
// writes them there), else worked out from its live counters and its price parameter.
export function spending(job) {
  const c = job.counters || {};
  const r = job.result || {};
  if ("tokens_per_accepted" in r) {
    return { final: true, total: r.total_tokens, perAccepted: r.tokens_per_accepted, cost: r.cost ?? null,
      costPerAccepted: r.cost_per_accepted ?? null };
  }
  const total = tokens(c), accepted = c.accepted || 0, price = (job.params || {}).price_per_million_tokens;
  // each role's cost at its price (counters.roles.<role>.cost), else every token at the job's price
  const roleCosts = Object.values(c.roles || {}).map((r) => r.cost).filter((x) => x != null);
  const cost = roleCosts.length ? roleCosts.reduce((a, b) => a + b, 0) : price == null ? null : (total * price) / 1e6;
  return { final: !isActive(job), total, perAccepted: accepted ? total / accepted : null, cost,
    costPerAccepted: cost !== null && accepted ? cost / accepted : null };
}

// Why a job that had a budget ended before its target, with the cap it reached.
export function Stopped({ job }) {
  const why = (job.result || {}).stopped;
  if (!why) return null;
  const p = job.params || {};
  const cap = p.max_total_tokens != null && why.startsWith("token") ? `max_total_tokens ${p.max_total_tokens}`
    : p.max_cost != null ? `max_cost ${p.max_cost} at ${p.price_per_million_tokens} per million tokens` : "";
  return html`<p class="stopped" id="stopped" role="status"><strong>Stopped before its target:</strong> ${why}${cap ? html` <span class="muted">(${cap})</span>` : ""}.
    It kept every example it had accepted.</p>`;
}

function Limits({ limits }) {
  const entries = Object.entries(limits || {});
  if (!entries.length) return "–";
  return html`<ul class="limits plain-list" id="llm-limits">${entries.map(([endpoint, n]) => html`<li key=${endpoint}
    data-endpoint=${endpoint}><code>${endpoint}</code> <strong class="n">${n}</strong></li>`)}</ul>`;
}

// The message names its endpoint first; shown once, on the line above it.
const withoutEndpoint = (e) => (e.message.startsWith(e.endpoint) ? e.message.slice(e.endpoint.length).replace(/^:\s*/, "") : e.message);

function LastErrors({ errors }) {
  return html`<ol class="llm-errors" id="llm-last-errors" reversed>${errors.slice().reverse().map((e, i) => html`<li key=${e.at + i}>
    <span class="muted small"><time datetime=${e.at}>${fmtTime(e.at)}</time> · <code>${e.endpoint}</code></span>
    <span class="message" title=${e.message}>${withoutEndpoint(e)}</span></li>`)}</ol>`;
}

// The "Model server" panel; `lost` is the rows rejected as llm_error (fetched by the overview).
export function ModelServer({ job, lost, lostRows }) {
  const c = job.counters || {};
  const s = spending(job);
  const live = isActive(job);
  const errors = c.llm_last_errors || [];
  const cached = c.cached_prompt_tokens || 0;
  return html`<div class="card" id="llm">
    <h3>Model server ${live && html`<span class="live small" id="llm-live">live</span>`}</h3>
    <dl>
      <dt>requests</dt><dd id="llm-requests">${c.llm_requests ?? 0}</dd>
      <dt>errors</dt><dd id="llm-errors">${c.llm_errors ?? 0} <span class="muted">(${c.llm_retries ?? 0} retries)</span></dd>
      <dt>tokens</dt><dd id="llm-tokens">${c.prompt_tokens ?? 0} prompt · ${c.completion_tokens ?? 0} completion</dd>
      ${Object.entries(c.roles || {}).sort(([a], [b]) => a.localeCompare(b)).map(([role, r]) => html`<dt key=${role}>${role}</dt>
        <dd class="llm-role" id=${`llm-role-${role}`}>${r.dialect || "?"} · ${r.llm_requests ?? 0} steps (${r.llm_errors ?? 0} errors) · ${r.prompt_tokens ?? 0} prompt · ${r.completion_tokens ?? 0} completion tokens${r.cost != null ? ` · cost ${r.cost.toFixed(4)}` : ""}</dd>`)}
      <dt>from cache</dt><dd id="llm-cached">${cached} prompt tokens${c.prompt_tokens ? ` (${fmtPercent(cached / c.prompt_tokens)} of prompt tokens)` : ""}</dd>
      ${"llm_busy_share" in c && html`<dt>busy</dt><dd id="llm-busy">${fmtPercent(c.llm_busy_share)} <span class="muted">of the time, a request in flight</span></dd>
        <dt>utilisation</dt><dd id="llm-utilisation">${fmtPercent(c.llm_utilisation)} <span class="muted">of the limit in flight (mean)</span></dd>`}
      ${"llm_concurrency" in c && html`<dt>limit</dt><dd><${Limits} limits=${c.llm_concurrency} /></dd>`}
      <dt title="prompt + completion tokens of every model request, over the accepted examples">${TOKENS_PER_ACCEPTED}</dt><dd id="per-accepted">${s.perAccepted == null ? "–" : `${s.perAccepted.toFixed(1)} tokens`}${s.final ? "" : html` <span class="muted">(so far)</span>`}</dd>
      ${s.cost !== null && html`<dt title="in the currency of price_per_million_tokens / price_per_gpu_hour">cost (price's currency)</dt><dd id="cost">${s.cost.toFixed(4)}${s.costPerAccepted !== null ? ` · ${s.costPerAccepted.toFixed(6)} per accepted` : ""}</dd>`}
    </dl>
    ${errors.length > 0 && html`<h4>Last model-server errors <span class="muted small">(newest first)</span></h4><${LastErrors} errors=${errors} />`}
    ${lost > 0 && html`<h4>Rows lost to model-server errors</h4>
      ${lostRows && lostRows.items.length > 0 && html`<ul class="llm-errors" id="llm-lost">${lostRows.items.map((r) => html`<li key=${r.id}>
        <a href=${`#/jobs/${job.id}/rows?rule=llm_error&open=${r.id}`}>#${r.seq}</a> ${r.instruction}</li>`)}</ul>`}`}
    ${(c.llm_errors || 0) > 0 && !lost && html`<p class="muted small">No row was lost to them (they were retried).</p>`}
  </div>`;
}

// The job's contamination report (result.contamination): benchmark items its candidates hit.
export function Contamination({ report, rejected, onRows }) {
  const benchmarks = Object.entries(report.benchmarks || {});
  return html`<div class="card" id="contamination">
    <h3>Contamination</h3>
    <p class="muted small" id="contamination-rule">${`Checked against benchmark ${report.benchmark_sets.length === 1 ? "set" : "sets"} `
      + `${report.benchmark_sets.map((b) => "#" + b).join(", ")} (${report.n}-grams, threshold ${report.threshold}${report.strict ? ", strict" : ""}).`}</p>
    ${report.candidates_hit === 0 ? html`<p id="contamination-none">No candidate hit a benchmark item.</p>` : html`
      <p><span id="contamination-hit">${report.candidates_hit}</span> candidate${report.candidates_hit === 1 ? "" : "s"} hit a benchmark item${rejected > 0 ? html`;
        <button type="button" class="link" id="contaminated-rows" onClick=${onRows}>${rejected} rejected as <code>contaminated</code></button>` : ""}</p>
      <div class="table-wrap"><table class="contamination"><thead><tr><th>benchmark</th><th>items hit</th><th>hits</th></tr></thead><tbody>
        ${benchmarks.map(([name, b]) => html`<tr key=${name} data-benchmark=${name}><td>${name}</td><td class="items-hit">${b.items_hit}</td>
          <td class="hits">${b.hits}</td></tr>`)}</tbody></table></div>
      ${benchmarks.map(([name, b]) => html`<details key=${name} class="items"><summary>items of ${name} hit</summary>
        <ul class="rules plain">${Object.entries(b.items).map(([item, n]) => html`<li key=${item}><code>${item}</code> ×${n}</li>`)}</ul>
      </details>`)}`}
  </div>`;
}
