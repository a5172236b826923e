// The evidence behind one row's fate: the decision and its score, the most similar pool
// instruction side by side with the shared words (ROUGE-L's common subsequence) marked,
// every instance with its fate, reason and judge scores, and the row's evolution tree.
import { html, useEffect, useState } from "./preact-htm.module.js";
import { evolves, fmtScore, fmtTime, lcsMarks } from "./util.js";
import { InstanceScores } from "./scores.js";
import { Turns } from "./turns.js";

function Marked({ pieces }) {
  return pieces.map((p, i) => (p.mark ? html`<mark key=${i}>${p.text}</mark>` : p.text));
}

// What became of a pool row after it was measured against: it joined the pool, but a pool
// row can still end outside the dataset (over_target surplus, its instances all rejected).
function PoolFate({ entry }) {
  if (!entry.fate || entry.fate === "accepted") return null;
  const how = entry.rule ? `dropped later as ${entry.rule}` : `ended ${entry.fate}`;
  return html` <span class="pool-fate muted small" data-fate=${entry.fate}>(#${entry.seq}, ${how})</span>`;
}

function Similar({ row }) {
  const top = row.most_similar[0];
  const other = row.instruction;
  const marks = lcsMarks(other, top.instruction);
  return html`<div class="similar" id="similar">
    <h4>Most similar instruction in the pool <span class="muted small">ROUGE-L ${fmtScore(top.rouge_l)} · ${marks.shared} shared words marked</span></h4>
    <div class="side-by-side">
      <div><div class="muted small">this row</div><p class="text-box" data-side="row"><${Marked} pieces=${marks.a} /></p></div>
      <div><div class="muted small">already in the pool<${PoolFate} entry=${top} /></div><p class="text-box" data-side="pool"><${Marked} pieces=${marks.b} /></p></div>
    </div>
    ${row.most_similar.length > 1 && html`<details><summary>${row.most_similar.length - 1} more similar</summary>
      <ol class="more-similar">${row.most_similar.slice(1).map((s, i) => html`<li key=${i}><span class="score">${fmtScore(s.rouge_l)}</span> ${s.instruction}<${PoolFate} entry=${s} /></li>`)}</ol>
    </details>`}
  </div>`;
}

function TreeNode({ node, path, current }) {
  const onPath = path.includes(node.id);
  return html`<li class=${onPath ? "on-path" : ""}>
    ${node.operation && html`<span class="edge">${node.operation} · round ${node.round}</span>`}
    <span class=${"node " + node.fate + (node.id === current ? " current" : "")} aria-current=${node.id === current ? "true" : null}>
      <span class="seq">#${node.seq}</span> ${node.instruction}
      ${node.rule && html` <code class="rule">${node.rule}</code>`}
    </span>
    ${node.children.length > 0 && html`<ul>${node.children.map((c) => html`<${TreeNode} key=${c.id} node=${c} path=${path} current=${current} />`)}</ul>`}
  </li>`;
}

function LineageTree({ api, job, row, onError }) {
  const [tree, setTree] = useState(null);
  useEffect(() => {
    api.get(`/jobs/${job.id}/instructions/${row.id}/lineage`).then(setTree).catch(onError);
  }, [row.id]);
  if (!tree) return html`<p class="muted">Loading the lineage…</p>`;
  return html`<div class="lineage" id="lineage">
    <h4>Lineage <span class="muted small">root first; each edge: operation · round</span></h4>
    <ul class="tree"><${TreeNode} node=${tree.root} path=${tree.path} current=${row.id} /></ul>
    ${tree.truncated && html`<p class="muted small">The tree is larger; its first rows are shown.</p>`}
  </div>`;
}

export function Evidence({ api, job, row, onError }) {
  const evolved = evolves(job) || row.parent_id || row.operation;
  const scored = row.instances.some((i) => Object.keys(i.scores || {}).length > 0);
  return html`<div class="evidence" id=${"evidence-" + row.id}>
    <dl class="decision">
      <dt>fate</dt><dd class=${"fate " + row.fate}>${row.fate}</dd>
      ${row.rule && html`<dt>rule</dt><dd><code>${row.rule}</code></dd>`}
      <dt>max ROUGE-L</dt><dd>${fmtScore(row.max_rouge_l)}</dd>
      ${row.mean_rouge_l != null && html`<dt>mean ROUGE-L</dt><dd>${fmtScore(row.mean_rouge_l)}</dd>`}
      <dt>in the pool</dt><dd>${row.in_pool ? "yes" : "no"}</dd>
      ${row.is_classification != null && html`<dt>classification</dt><dd>${row.is_classification ? "yes" : "no"}</dd>`}
      <dt>decided</dt><dd>#${row.seq} · ${fmtTime(row.created_at)}</dd>
    </dl>
    ${row.most_similar.length > 0 && html`<${Similar} row=${row} />`}
    <h4>Instances</h4>
    ${row.instances.length === 0 ? html`<p class="muted">No instance (the instruction was decided before its instances were asked for).</p>`
      : html`<div class="table-wrap"><table class="instances"><thead><tr><th>input</th><th>output</th><th>fate</th>${scored && html`<th>judge scores</th>`}</tr></thead><tbody>
        ${row.instances.map((i) => html`<tr key=${i.id}><td><pre>${i.input || "–"}</pre></td><td><pre>${i.output || "–"}</pre><${Turns} turns=${i.turns} /></td>
          <td><span class=${"fate " + i.fate}>${i.fate}</span>${i.rule && html` <code class="rule">${i.rule}</code>`}</td>
          ${scored && html`<td class="scores-cell"><${InstanceScores} instance=${i} named=${true} /></td>`}</tr>`)}
      </tbody></table></div>`}
    ${evolved && html`<${LineageTree} api=${api} job=${job} row=${row} onError=${onError} />`}
  </div>`;
}
