// The dashboard: a key gate, then jobs (list, detail, new job), datasets and topic trees, routed by the
// URL's hash so a reload or a pasted link opens the same view. Preact (through htm) renders
// by diffing, so a refresh changes only the nodes whose data changed.
import { html, render, useCallback, useEffect, useMemo, useRef, useState } from "./preact-htm.module.js";
import { ApiError, makeApi } from "./api.js";
import { fmtTime, useHash } from "./util.js";
import { JobsPage } from "./jobs.js";
import { NewJobPage } from "./newjob.js";
import { DatasetsPage } from "./datasets.js";
import { TopicsPage } from "./topics.js";

const BASE = document.body.dataset.api;
const POLL_MS = Number(document.body.dataset.pollMs) || 2000;
const KEY_STORE = "sprout.apiKey";

function KeyForm({ onKey, message }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(message || "");
  const [busy, setBusy] = useState(false);
  const keyInput = useRef(null);
  useEffect(() => { if (keyInput.current) keyInput.current.focus(); }, []);  // the one thing to do here
  async function submit(event) {
    event.preventDefault();
    const key = value.trim();
    if (!key) return setError("Enter a key first.");
    setBusy(true);
    setError("");
    try {
      // the key is checked before it is kept: one request with it
      const response = await fetch(BASE + "/jobs?limit=1", { headers: { Authorization: "Bearer " + key } });
      if (response.status === 401) setError("This key was refused (invalid or revoked). Make one on the server with: sprout apikey create --name me");
      else if (!response.ok) setError(`The API answered ${response.status}; try again shortly.`);
      else onKey(key);
    } catch (err) {
      setError("The API cannot be reached: " + err.message);
    } finally {
      setBusy(false);
    }
  }
  return html`<main class="gate">
    <form class="card key-form" onSubmit=${submit}>
      <h2>Sign in with an API key</h2>
      <p class="muted">Make one on the server with <code>sprout apikey create --name me</code>. It is checked, then kept in
        this browser only (localStorage) until you forget it.</p>
      <label for="key">API key</label>
      <div class="row">
        <input id="key" name="key" type="password" autocomplete="off" placeholder="the key printed by sprout apikey create"
          ref=${keyInput} value=${value} onInput=${(e) => setValue(e.target.value)} />
        <button type="submit" disabled=${busy}>${busy ? "Checking…" : "Use key"}</button>
      </div>
      ${error && html`<p class="error" role="alert" id="key-error">${error}</p>`}
    </form>
  </main>`;
}

function StaleBanner({ net }) {
  if (net.ok) return null;
  return html`<div class="stale" role="status" id="stale">
    <strong>Stale.</strong> ${" "}The API cannot be reached: ${net.message}.
    ${net.lastOk ? html` What you see is from ${fmtTime(net.lastOk)}.` : ""} Retrying…
  </div>`;
}

function Nav({ route }) {
  const top = route.parts[0] || "jobs";
  const link = (href, label, on) => html`<a href=${href} class=${on ? "on" : ""} aria-current=${on ? "page" : null}>${label}</a>`;
  return html`<nav aria-label="sections">
    ${link("#/jobs", "Jobs", top === "jobs")}
    ${link("#/new", "New job", top === "new")}
    ${link("#/datasets", "Datasets", top === "datasets")}
    ${link("#/topics", "Topics", top === "topics")}
  </nav>`;
}

function App() {
  const [key, setKey] = useState(() => localStorage.getItem(KEY_STORE) || "");
  const [gateMessage, setGateMessage] = useState("");
  const [net, setNet] = useState({ ok: true, message: "", lastOk: null });
  const route = useHash();
  const keyRef = useRef(key);
  keyRef.current = key;

  const onReach = useCallback((ok, message) => {
    setNet((prev) => {
      if (ok) return prev.ok ? { ...prev, lastOk: new Date().toISOString() } : { ok: true, message: "", lastOk: new Date().toISOString() };
      return { ...prev, ok: false, message };
    });
  }, []);
  const api = useMemo(() => makeApi(BASE, () => keyRef.current, onReach), [onReach]);

  // a key that stops working (revoked) sends the user back to the gate instead of retrying forever
  const onError = useCallback((err) => {
    if (err instanceof ApiError && err.status === 401) {
      localStorage.removeItem(KEY_STORE);
      setGateMessage("The key was refused (revoked?). Enter another one.");
      setKey("");
    }
  }, []);

  useEffect(() => {
    document.body.dataset.stale = net.ok ? "no" : "yes";
  }, [net.ok]);
  // the job kinds (what each produces, whether it needs a model), read once per key
  const [kinds, setKinds] = useState(null);
  useEffect(() => {
    if (key) api.get("/kinds").then((k) => setKinds(Object.fromEntries(k.items.map((x) => [x.name, x])))).catch(onError);
  }, [key]);

  const forget = () => {
    localStorage.removeItem(KEY_STORE);
    setGateMessage("");
    setKey("");
  };

  const header = html`<header>
    <h1><a href="#/jobs">Sprout</a></h1>
    ${key && html`<${Nav} route=${route} />`}
    ${key && html`<div class="who"><span class="muted" title="the key kept in this browser">key …${key.slice(-4)}</span>
      <button type="button" class="link" id="forget-key" onClick=${forget}>Forget key</button></div>`}
  </header>`;

  if (!key) {
    return html`${header}<${KeyForm} message=${gateMessage} onKey=${(k) => {
      localStorage.setItem(KEY_STORE, k);
      setGateMessage("");
      setKey(k);
    }} />`;
  }
  const top = route.parts[0] || "jobs";
  let page;
  if (top === "new") page = html`<${NewJobPage} api=${api} route=${route} onError=${onError} />`;
  else if (top === "topics") page = html`<${TopicsPage} api=${api} route=${route} onError=${onError} />`;
  else if (top === "datasets") page = html`<${DatasetsPage} api=${api} route=${route} pollMs=${POLL_MS} onError=${onError} />`;
  else page = html`<${JobsPage} api=${api} route=${route} pollMs=${POLL_MS} onError=${onError} kinds=${kinds} />`;
  return html`${header}<${StaleBanner} net=${net} />${page}`;
}

if (!location.hash) history.replaceState(null, "", "#/jobs");
const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
