// Review mode of a dataset's latest version (the /api/v1/datasets/{name}/review routes): one row
// at a time with its evidence, at keyboard speed. Keys: a accept · r reject (1-6 picks a reason,
// or type one, Enter) · e edit the output (Ctrl+Enter saves) · 1-5 rate · j/→ next · k/← previous
// · u undo · c commit · ? help. Every decision is stored at once with the reviewer and time, so
// the review survives a reload; the judge's scores are shown as a suggestion, never applied.
// A bulk action decides every row a query matches (e.g. judge quality <= 2). Committing makes a
// new version whose card and diff carry the counts and the reasons.
import { html, useCallback, useEffect, useRef, useState } from "./preact-htm.module.js";
import { go } from "./util.js";
import { errorText } from "./jobs.js";
import { ExampleScores } from "./scores.js";

const PAGE = 50;
const enc = encodeURIComponent;
const STATUS_LABEL = { accepted: "accepted", rejected: "rejected", edited: "edited" };

// the judge's 1-6 quality as a suggestion: a decision and a 1-5 rating
export function suggestion(scores) {
  const q = scores && typeof scores.quality === "number" ? scores.quality : null;
  if (q === null) return null;
  const rating = Math.min(5, Math.max(1, Math.round((q * 5) / 6)));
  return { quality: q, rating, decision: q <= 2 ? "reject" : q >= 4 ? "accept" : "look closer" };
}

function Help() {
  return html`<details class="card small review-help" id="review-help"><summary>Keys</summary>
    <dl class="keys">
      <dt><kbd>a</kbd></dt><dd>accept</dd>
      <dt><kbd>r</kbd></dt><dd>reject: then <kbd>1</kbd>–<kbd>6</kbd> picks a reason, or type one and press <kbd>Enter</kbd></dd>
      <dt><kbd>e</kbd></dt><dd>edit the output (<kbd>Ctrl</kbd>+<kbd>Enter</kbd> saves, <kbd>Esc</kbd> cancels)</dd>
      <dt><kbd>1</kbd>–<kbd>5</kbd></dt><dd>rate the row (an undecided row is accepted with it)</dd>
      <dt><kbd>j</kbd> <kbd>→</kbd> / <kbd>k</kbd> <kbd>←</kbd></dt><dd>next / previous row</dd>
      <dt><kbd>u</kbd></dt><dd>undo the last decision</dd>
      <dt><kbd>c</kbd></dt><dd>commit the review as a new version</dd>
    </dl></details>`;
}

export function ReviewMode({ api, name, dataset, params, onError, onCommitted }) {
  const latest = dataset.latest ? dataset.latest.number : null;
  const base = `/datasets/${enc(name)}`;
  const [state, setState] = useState(null);
  const [pages, setPages] = useState({});
  const [pos, setPos] = useState(Math.max(0, (Number(params.row) || 1) - 1));
  const [mode, setMode] = useState(null); // null | "reject" | "edit"
  const [reason, setReason] = useState("");
  const [draft, setDraft] = useState("");
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  const undo = useRef([]);
  const reasonRef = useRef(null);
  const editRef = useRef(null);
  const keyHandler = useRef(null);

  const loadState = useCallback(() => api.get(`${base}/review`).then(setState).catch((err) => { onError(err); setMessage(errorText(err)); }), [name]);
  const loadPage = useCallback(async (n) => {
    const page = await api.get(`${base}/versions/${latest}/rows?limit=${PAGE}&offset=${n * PAGE}`);
    setPages((old) => ({ ...old, [n]: page.items }));
  }, [name, latest]);
  useEffect(() => { if (latest !== null) { loadState(); setPages({}); } }, [name, latest]);
  const pageNo = Math.floor(pos / PAGE);
  useEffect(() => { if (latest !== null && !pages[pageNo]) loadPage(pageNo).catch((err) => { onError(err); setMessage(errorText(err)); }); }, [pageNo, pages, latest]);
  const row = pages[pageNo] ? pages[pageNo][pos % PAGE] : null;
  const total = state ? state.total : 0;

  const setRow = (id, review) => setPages((old) => {
    const next = { ...old };
    for (const k of Object.keys(next)) next[k] = next[k].map((r) => (r.id === id ? { ...r, review } : r));
    return next;
  });
  async function decide(body, advance = true) {
    if (!row || busy) return;
    setBusy(true);
    setMessage("");
    try {
      const before = row.review;
      const saved = await api.put(`${base}/review/rows/${row.id}`, body);
      undo.current.push({ id: row.id, before, pos });
      setRow(row.id, saved);
      loadState();
      setMode(null);
      if (advance && pos + 1 < total) setPos(pos + 1);
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  const keep = (r) => (r && r.rating ? { rating: r.rating } : {});
  const accept = () => decide({ status: "accepted", ...keep(row.review) });
  const reject = (why) => decide({ status: "rejected", reason: why || null, ...keep(row.review) });
  const rate = (n) => {
    const r = row.review;
    const body = r ? { status: r.status, reason: r.reason, rating: n, ...(r.status === "edited" ? { output: r.output } : {}) }
      : { status: "accepted", rating: n };
    decide(body, false);
  };
  const saveEdit = () => decide({ status: "edited", output: draft, ...keep(row.review) });
  async function undoLast() {
    const last = undo.current.pop();
    if (!last) return setMessage("Nothing to undo.");
    setBusy(true);
    try {
      if (last.before) {
        const b = last.before;
        const saved = await api.put(`${base}/review/rows/${last.id}`, { status: b.status, reason: b.reason, rating: b.rating,
          ...(b.status === "edited" ? { output: b.output } : {}) });
        setRow(last.id, saved);
      } else {
        await api.del(`${base}/review/rows/${last.id}`);
        setRow(last.id, null);
      }
      setPos(last.pos);
      loadState();
      setMessage("Undone.");
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  async function commit() {
    if (busy) return;
    setBusy(true);
    setMessage("");
    try {
      const version = await api.post(`${base}/review/commit`, { expected_latest: latest });
      const r = version.counts.review;
      setMessage(`Version ${version.number}: ${version.row_count} rows (${r.rejected} rejected, ${r.edited} edited, ${r.accepted} accepted).`);
      undo.current = [];
      onCommitted();
      go(["datasets", name, "diff"], { from: latest, to: version.number });
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  useEffect(() => {
    if (mode === "reject" && reasonRef.current) reasonRef.current.focus();
    if (mode === "edit" && editRef.current) editRef.current.focus();
  }, [mode]);
  // the handler is replaced at every render, before the DOM shows it: a key always acts on the row in view
  keyHandler.current = function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || !row) return;
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    const k = e.key;
    let handled = true;
    if (mode === "reject" && /^[1-6]$/.test(k)) reject(state.reasons[Number(k) - 1]);
    else if (k === "Escape") setMode(null);
    else if (k === "a") accept();
    else if (k === "r") { setReason(""); setMode("reject"); }
    else if (k === "e") { setDraft(row.review && row.review.output ? row.review.output : row.output); setMode("edit"); }
    else if (/^[1-5]$/.test(k)) rate(Number(k));
    else if (k === "j" || k === "ArrowRight") { setMode(null); setPos(Math.min(total - 1, pos + 1)); }
    else if (k === "k" || k === "ArrowLeft") { setMode(null); setPos(Math.max(0, pos - 1)); }
    else if (k === "u") undoLast();
    else if (k === "c") commit();
    else handled = false;
    if (handled) e.preventDefault();
  };
  useEffect(() => {
    const listener = (e) => keyHandler.current(e);
    document.addEventListener("keydown", listener);
    return () => document.removeEventListener("keydown", listener);
  }, []);

  if (latest === null) return html`<p class="muted card">No version yet.</p>`;
  if (!state) return html`<p class="muted">Loading the review…</p>`;
  const s = row ? suggestion(row.scores) : null;
  const r = row && row.review;
  const done = state.reviewed;
  return html`<div class="review-mode" id="review-mode">
    <section class="card" id="review-progress" aria-live="polite">
      <div class="title-line"><strong>Review of v${latest}</strong>
        <span class="muted small">${done} of ${total} reviewed · ${state.accepted} accepted · ${state.rejected} rejected · ${state.edited} edited · ${state.rated} rated${state.reviewers.length ? ` · by ${state.reviewers.join(", ")}` : ""}</span></div>
      <progress max=${total || 1} value=${done} aria-label="rows reviewed"></progress>
      <div class="actions"><button type="button" id="commit-review" disabled=${busy || (state.rejected + state.edited === 0)} onClick=${commit}
        title="rejected rows leave, edited rows are corrected; the card and diff keep the reasons">Commit the review as a new version <kbd>c</kbd></button></div>
      ${message && html`<p class="notice" role="status" id="review-message">${message}</p>`}
    </section>
    ${total === 0 ? html`<p class="muted card">No rows.</p>` : !row ? html`<p class="muted">Loading row ${pos + 1}…</p>` : html`
    <article class=${"card review-row" + (r ? " " + r.status : "")} id="review-row" data-example=${row.id} data-status=${r ? r.status : "unreviewed"}>
      <div class="title-line"><strong>Row ${pos + 1} of ${total}</strong>
        <span class=${"fate " + (r ? (r.status === "rejected" ? "rejected" : "accepted") : "")} id="row-status">${r ? STATUS_LABEL[r.status] : "unreviewed"}${r && r.reason ? `: ${r.reason}` : ""}${r && r.rating ? ` · rated ${r.rating}/5` : ""}</span></div>
      <p class="muted small">#${row.id} · ${row.method} · added in v${row.added_in}${r ? ` · ${r.reviewer}, ${new Date(r.reviewed_at).toLocaleString()}` : ""}</p>
      <div class="evidence small">
        ${row.scores && row.scores.max_rouge_l != null && html`<span class="score" title="highest ROUGE-L against the rest of the pool when it was kept">R-L ${Number(row.scores.max_rouge_l).toFixed(3)}</span> `}
        <${ExampleScores} scores=${row.scores} />
        ${s && html` <span class="suggestion" id="judge-suggestion" title="the judge's quality score (1-6), a suggestion only">judge suggests: <strong>${s.decision}</strong>, rating ${s.rating}/5 (quality ${Number(s.quality).toFixed(1)} of 6)</span>`}
        ${row.lineage && row.lineage.length > 0 && html` <span class="muted">${row.lineage.length} rewrite${row.lineage.length > 1 ? "s" : ""} before it</span>`}
      </div>
      <h4>Instruction</h4><p class="text">${row.instruction}</p>
      ${row.input && html`<h4>Input</h4><pre class="text-box">${row.input}</pre>`}
      <h4>Output${r && r.status === "edited" ? " (edited; the original below)" : ""}</h4>
      ${r && r.status === "edited" ? html`<pre class="text-box" id="edited-output">${r.output}</pre><pre class="text-box muted">${row.output}</pre>`
        : html`<pre class="text-box">${row.output}</pre>`}
      ${mode === "reject" && html`<form class="inline-form reason-form" id="reason-form" onSubmit=${(e) => { e.preventDefault(); reject(reason.trim()); }}>
        <p class="small">Why? Press a number, or type a reason and Enter:</p>
        <ol class="reasons">${state.reasons.map((x, i) => html`<li key=${x}><button type="button" class="small" data-reason=${x} onClick=${() => reject(x)}><kbd>${i + 1}</kbd> ${x}</button></li>`)}</ol>
        <label>reason <input id="reason-input" ref=${reasonRef} value=${reason} maxlength="500" placeholder="type a reason"
          onInput=${(e) => setReason(e.target.value)} onKeyDown=${(e) => {
            if (e.key === "Escape") { e.preventDefault(); setMode(null); }
            else if (/^[1-6]$/.test(e.key) && !reason) { e.preventDefault(); reject(state.reasons[Number(e.key) - 1]); }
          }} /></label>
        <button type="submit" id="reject-with-reason">Reject</button></form>`}
      ${mode === "edit" && html`<form class="edit-form" id="edit-form" onSubmit=${(e) => { e.preventDefault(); saveEdit(); }}>
        <label for="edit-output">New output</label>
        <textarea id="edit-output" ref=${editRef} rows="8" value=${draft} onInput=${(e) => setDraft(e.target.value)}
          onKeyDown=${(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveEdit(); }
            else if (e.key === "Escape") { e.preventDefault(); setMode(null); }
          }}></textarea>
        <div class="actions"><button type="submit" id="save-edit">Save the edit</button> <button type="button" class="link" onClick=${() => setMode(null)}>Cancel</button></div></form>`}
      <div class="actions review-buttons">
        <button type="button" id="prev-row" onClick=${() => setPos(Math.max(0, pos - 1))} disabled=${pos === 0}>← Previous <kbd>k</kbd></button>
        <button type="button" id="accept-row" onClick=${accept} disabled=${busy}>Accept <kbd>a</kbd></button>
        <button type="button" id="reject-row" class="danger" onClick=${() => { setReason(""); setMode("reject"); }} disabled=${busy}>Reject <kbd>r</kbd></button>
        <button type="button" id="edit-row" onClick=${() => { setDraft(r && r.output ? r.output : row.output); setMode("edit"); }} disabled=${busy}>Edit <kbd>e</kbd></button>
        <span class="rating" role="group" aria-label="rating">${[1, 2, 3, 4, 5].map((n) => html`<button type="button" key=${n} class=${"small" + (r && r.rating === n ? " on" : "") + (s && s.rating === n ? " suggested" : "")}
          data-rating=${n} aria-pressed=${r && r.rating === n ? "true" : "false"} onClick=${() => rate(n)}>${n}</button>`)}</span>
        <button type="button" id="undo" onClick=${undoLast} disabled=${busy}>Undo <kbd>u</kbd></button>
        <button type="button" id="next-row" onClick=${() => setPos(Math.min(total - 1, pos + 1))} disabled=${pos + 1 >= total}>Next → <kbd>j</kbd></button>
      </div>
    </article>`}
    <${Help} />
    <${BulkForm} api=${api} base=${base} reasons=${state.reasons} onDone=${() => { setPages({}); loadState(); }} onError=${onError} />
  </div>`;
}

// --- bulk: accept or reject every row of the latest version a query matches --------------------------
const FIELDS = [["quality", "judge quality (1-6)"], ["complexity", "judge complexity (1-6)"], ["max_rouge_l", "ROUGE-L to the pool (0-1)"]];

function BulkForm({ api, base, reasons, onDone, onError }) {
  const [form, setForm] = useState({ score: "quality", bound: "max", value: "2", text: "", status: "rejected", reason: reasons[reasons.length - 1] });
  const [count, setCount] = useState(null);
  const [message, setMessage] = useState("");
  const set = (change) => { setForm({ ...form, ...change }); setCount(null); };
  function query() {
    const q = {};
    if (form.value.trim() !== "") {
      q.score = form.score;
      q[form.bound === "max" ? "score_max" : "score_min"] = Number(form.value);
    }
    if (form.text.trim()) q.text = form.text.trim();
    return q;
  }
  async function send(preview) {
    setMessage("");
    try {
      const out = await api.post(`${base}/review/bulk`, { query: query(), status: form.status, reason: form.status === "rejected" ? form.reason || null : null, preview });
      if (preview) setCount(out.marked);
      else { setMessage(`${out.marked} row${out.marked === 1 ? "" : "s"} ${form.status}.`); setCount(null); onDone(); }
    } catch (err) {
      onError(err);
      setMessage(errorText(err));
    }
  }
  return html`<form class="card bulk-form" id="bulk-form" onSubmit=${(e) => { e.preventDefault(); send(count === null); }}>
    <h3>Bulk action over a filter</h3>
    <div class="inline-form">
      <label>score <select id="bulk-score" value=${form.score} onChange=${(e) => set({ score: e.target.value })}>
        ${FIELDS.map(([k, label]) => html`<option value=${k}>${label}</option>`)}</select></label>
      <label>is <select id="bulk-bound" value=${form.bound} onChange=${(e) => set({ bound: e.target.value })}>
        <option value="max">at most</option><option value="min">at least</option></select></label>
      <label>value <input id="bulk-value" inputmode="decimal" size="4" value=${form.value} onInput=${(e) => set({ value: e.target.value })} /></label>
      <label>and the text contains <input id="bulk-text" value=${form.text} placeholder="(any)" onInput=${(e) => set({ text: e.target.value })} /></label>
    </div>
    <div class="inline-form">
      <label>then <select id="bulk-status" value=${form.status} onChange=${(e) => set({ status: e.target.value })}>
        <option value="rejected">reject</option><option value="accepted">accept</option></select></label>
      ${form.status === "rejected" && html`<label>reason <input id="bulk-reason" list="bulk-reasons" value=${form.reason} onInput=${(e) => set({ reason: e.target.value })} />
        <datalist id="bulk-reasons">${reasons.map((x) => html`<option value=${x} />`)}</datalist></label>`}
      <button type="submit" id="bulk-apply">${count === null ? "Count the matching rows" : `${form.status === "rejected" ? "Reject" : "Accept"} the ${count} matching row${count === 1 ? "" : "s"}`}</button>
    </div>
    ${message && html`<p class="notice" role="status" id="bulk-message">${message}</p>`}
  </form>`;
}
