// Small shared helpers: formatting, the hash route, polling, and ROUGE-L's shared words.
import { useEffect, useRef, useState } from "./preact-htm.module.js";

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
export const isActive = (job) => job && !FINISHED.has(job.status);

export function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
}

export const fmtPercent = (x) => (x === null || x === undefined ? "–" : Math.round(x * 100) + "%");

export const fmtScore = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));

export function duration(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return (end - new Date(job.started_at)) / 1000;
}

// What a job is, from GET /kinds (`kinds`: name -> kind) and its counters, not from its name.
export const trains = (job) => "stage" in (job.counters || {});
export const evolves = (job) => Object.keys((job.counters || {}).operations || {}).length > 0;
// a job that only scores another's examples (a `score` job): its counters start with `judged`
// and have no generation counters
export const judgesOnly = (job) => "judged" in (job.counters || {}) && !("generated" in (job.counters || {}));
export function producesRows(job, kinds) {
  const kind = kinds && kinds[job.kind];
  return kind ? kind.produces_examples : !trains(job);
}

// Where a job stands, in words a person can act on.
export function phase(job, kinds) {
  const c = job.counters || {};
  if (job.status === "queued") return job.attempts > 0 ? "queued again (waiting for a worker to resume it)" : "queued: waiting for a worker";
  if (job.status === "running") {
    if (job.cancel_requested) return "stopping: cancel requested, keeping what it accepted";
    if (trains(job)) return "training: " + (c.stage || "starting");
    if (judgesOnly(job)) return c.judge_llm_requests || c.judged ? "judging" : "starting the judge's model server (no answer yet)";
    if (c.judge_examples != null) return "judging: the judge scores the curated examples";
    if (kinds && kinds[job.kind] && !kinds[job.kind].needs_llm) return "running";
    if (!c.llm_requests && !c.generated) return "starting the model server (no model answer yet)";
    const p = job.progress || {};
    if (p.target && p.done >= p.target) return "finishing: target reached, writing the last rows";
    return "generating";
  }
  if (job.status === "failed") return "failed";
  if (job.status === "cancelled") return "cancelled";
  return "finished";
}

// --- the route lives in the URL's hash: #/jobs/12/rows?fate=rejected&rule=too_similar
export function parseHash(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const [path, query] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: Object.fromEntries(new URLSearchParams(query || "")) };
}

export function makeHash(parts, params = {}) {
  const clean = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  const query = new URLSearchParams(clean).toString();
  return "#/" + parts.map(encodeURIComponent).join("/") + (query ? "?" + query : "");
}

export function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return parseHash(hash);
}

export function go(parts, params) {
  location.hash = makeHash(parts, params);
}

// The route's parameters as the URL holds them now: a change made before the page has
// re-rendered from the previous one (two quick changes in a row) builds on it, not on
// what the page last rendered.
export const currentParams = () => parseHash(location.hash).params;

// --- polling: paused while the tab is hidden, and only while `live` (a finished job is
// loaded once, then left alone). Pollers are counted on <body data-pollers> for tests.
export function useVisible() {
  const [visible, setVisible] = useState(document.visibilityState !== "hidden");
  useEffect(() => {
    const on = () => setVisible(document.visibilityState !== "hidden");
    document.addEventListener("visibilitychange", on);
    return () => document.removeEventListener("visibilitychange", on);
  }, []);
  return visible;
}

let pollers = 0;
function countPollers(delta) {
  pollers += delta;
  document.body.dataset.pollers = String(pollers);
}

export function usePoll(load, ms, live, deps) {
  const visible = useVisible();
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    if (!visible) return undefined;
    let stopped = false;
    let timer = null;
    let polling = false;
    const stop = () => {
      if (polling) countPollers(-1);
      polling = false;
    };
    const tick = async () => {
      let delay = ms;
      try {
        await loadRef.current();
      } catch (err) {
        delay = Math.min(ms * 5, 15000);  // the API is away or refused: retry, slower
        if (err && err.status === 401) stopped = true;
      }
      if (stopped || !live) return stop();
      if (!polling) countPollers(1);
      polling = true;
      timer = setTimeout(tick, delay);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      stop();
    };
  }, [visible, live, ms, ...deps]);
}

// --- ROUGE-L's shared words: the tokens of a longest common subsequence of two texts,
// tokenized as rouge-score does (lower-cased runs of letters and digits).
export function tokens(text) {
  const out = [];
  const re = /[A-Za-z0-9]+/g;
  let m;
  while ((m = re.exec(text)) !== null) out.push({ word: m[0].toLowerCase(), start: m.index, end: m.index + m[0].length });
  return out;
}

export function lcsMarks(a, b) {
  const ta = tokens(a), tb = tokens(b);
  const n = ta.length, m = tb.length;
  const dp = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i][j] = ta[i].word === tb[j].word ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
    }
  }
  const inA = new Set(), inB = new Set();
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (ta[i].word === tb[j].word) { inA.add(i); inB.add(j); i++; j++; }
    else if (dp[i + 1][j] >= dp[i][j + 1]) i++;
    else j++;
  }
  const score = n + m ? (2 * inA.size) / (n + m) : 0;
  return { a: spans(a, ta, inA), b: spans(b, tb, inB), shared: inA.size, score };
}

// [{text, mark}] pieces of `text`, marking the tokens whose index is in `marked`.
function spans(text, toks, marked) {
  const out = [];
  let at = 0;
  toks.forEach((t, k) => {
    if (!marked.has(k)) return;
    if (t.start > at) out.push({ text: text.slice(at, t.start), mark: false });
    out.push({ text: text.slice(t.start, t.end), mark: true });
    at = t.end;
  });
  if (at < text.length) out.push({ text: text.slice(at), mark: false });
  return out;
}
