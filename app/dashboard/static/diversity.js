// The diversity report of a job or a dataset version (GET .../diversity): distinct-1/2, the
// histogram of each instruction's max ROUGE-L to the others, verb-noun coverage with the top
// verbs and their objects, and the same figures by method, persona and topic.
import { html, useEffect, useState } from "./preact-htm.module.js";
import { binLabels, ChartBox, COLORS } from "./charts.js";

const fmt = (x) => (x == null ? "–" : Number(x).toFixed(3));

export function Diversity({ api, path, title, onError }) {
  const [report, setReport] = useState(null);
  const [failed, setFailed] = useState("");
  useEffect(() => {
    let live = true;
    setReport(null);
    api.get(path).then((r) => live && setReport(r)).catch((err) => {
      if (!live) return;
      setFailed(err.message || String(err));
      if (onError) onError(err);
    });
    return () => { live = false; };
  }, [path]);
  if (failed) return html`<p class="muted" id="diversity-error">No diversity report: ${failed}</p>`;
  if (!report) return html`<p class="muted">Computing the diversity report…</p>`;
  const all = report.overall;
  const rouge = all.max_rouge_l;
  const vn = all.verb_noun;
  const groups = Object.entries(report.by).flatMap(([key, named]) => Object.entries(named).map(([name, s]) => [key, name, s]));
  return html`<section class="diversity" id="diversity">
    <h3>${title || "Diversity"}</h3>
    <dl class="decision" id="diversity-figures">
      <dt>instructions</dt><dd data-figure="rows">${all.rows}</dd>
      <dt>distinct-1 / distinct-2</dt><dd data-figure="distinct">${fmt(all.distinct_1)} / ${fmt(all.distinct_2)}</dd>
      <dt>max ROUGE-L to the rest</dt><dd data-figure="rouge">mean ${fmt(rouge.mean)} · median ${fmt(rouge.median)} · p90 ${fmt(rouge.p90)}${rouge.sampled ? ` (a sample of ${rouge.rows_scored})` : ""}</dd>
      <dt>verb-noun coverage</dt><dd data-figure="coverage">${fmt(vn.coverage)} · ${vn.distinct_verbs} verbs · ${vn.distinct_pairs} pairs</dd>
    </dl>
    <div class="chart-grid">
      <${ChartBox} id="chart-diversity-rouge" title="Max ROUGE-L of each instruction to the others"
        empty=${all.rows ? "" : "No instruction."}
        config=${{ type: "bar", data: { labels: binLabels(rouge.histogram.edges, 1), datasets: [{ label: "instructions", data: rouge.histogram.counts, backgroundColor: COLORS.BLUE }] },
          options: { plugins: { legend: { display: false } } } }} />
      <${ChartBox} id="chart-diversity-verbs" title="Top root verbs" note="instructions; their top objects below"
        empty=${vn.top_verbs.length ? "" : "No root verb found."}
        config=${{ type: "bar", data: { labels: vn.top_verbs.map((v) => v.verb), datasets: [{ label: "instructions", data: vn.top_verbs.map((v) => v.count), backgroundColor: COLORS.GREEN }] },
          options: { indexAxis: "y", plugins: { legend: { display: false } } } }} />
    </div>
    ${vn.top_verbs.length > 0 && html`<p class="small" id="diversity-verbs">${vn.top_verbs.slice(0, 10).map((v, i) => html`${i ? " · " : ""}<strong>${v.verb}</strong> ${v.nouns.map((n) => n.noun).join(", ") || "–"}`)}</p>`}
    ${groups.length > 0 && html`<div class="table-wrap"><table id="diversity-groups"><thead><tr><th>by</th><th>group</th><th>instructions</th><th>distinct-1</th><th>distinct-2</th><th>mean max ROUGE-L</th><th>verb-noun coverage</th></tr></thead><tbody>
      ${groups.map(([key, name, s]) => html`<tr key=${key + name} data-group=${key}><td>${key}</td><td>${name}</td><td>${s.rows}</td><td>${fmt(s.distinct_1)}</td><td>${fmt(s.distinct_2)}</td><td>${fmt(s.max_rouge_l.mean)}</td><td>${fmt(s.verb_noun.coverage)}</td></tr>`)}
    </tbody></table></div>`}
  </section>`;
}
