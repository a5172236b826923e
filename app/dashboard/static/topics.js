// Topic trees (the /api/v1/topic-trees routes): the list and a form for a new tree (a root topic),
// a stored tree as a nested list edited one node at a time (rename, add a subtopic, delete a
// subtree: POST /topic-trees/{id}/edits, checked by the API, which names the field at fault),
// and a form that starts a topic_tree job on the tree as it stands (POST /jobs).
import { html, useEffect, useState } from "./preact-htm.module.js";
import { ApiError } from "./api.js";
import { fmtTime, go } from "./util.js";
import { errorText } from "./jobs.js";

// an API error with the fields it names ("path[1]: 'Cooking' has no subtopic 'Pastry'")
function editError(err) {
  if (err instanceof ApiError && err.errors && err.errors.length) return err.errors.map((e) => e.msg).join("; ");
  return errorText(err);
}

export function TopicsPage({ api, route, onError }) {
  const id = route.parts[1];
  return id ? html`<${TopicTree} key=${id} api=${api} id=${id} onError=${onError} />`
    : html`<${TopicTreeList} api=${api} onError=${onError} />`;
}

function TopicTreeList({ api, onError }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState("");
  const [name, setName] = useState("");
  const [root, setRoot] = useState("");
  useEffect(() => {
    api.get("/topic-trees?limit=200").then(setList).catch((err) => { onError(err); setError(errorText(err)); });
  }, []);
  async function create(event) {
    event.preventDefault();
    setError("");
    try {
      const made = await api.post("/topic-trees", { name: name.trim() || root.trim(), tree: { topic: root, children: [] } });
      go(["topics", String(made.id)]);
    } catch (err) {
      onError(err);
      setError(editError(err));
    }
  }
  return html`<main class="datasets-page topics-page">
    <div class="title-line"><h2>Topic trees ${list && html`<span class="muted">(${list.total})</span>`}</h2></div>
    <p class="muted">A topic_tree job writes tasks for each leaf of a tree. A job given a root description grows a tree
      and stores it here; any tree can be edited, then used by a new job.</p>
    <form class="card inline-form" id="new-tree" onSubmit=${create}>
      <label>root topic <input id="new-tree-root" required value=${root} onInput=${(e) => setRoot(e.target.value)} /></label>
      <label>name <input id="new-tree-name" placeholder="the root topic" value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <button type="submit" id="new-tree-create">Create tree</button>
    </form>
    ${error && html`<p class="error" role="alert" id="topics-error">${error}</p>`}
    ${list && list.total > 0 && html`<div class="table-wrap card"><table id="topic-trees">
      <thead><tr><th>name</th><th>made by</th><th>topics</th><th>leaves</th><th>updated</th></tr></thead>
      <tbody>${list.items.map((t) => html`<tr key=${t.id}>
        <td><a href=${"#/topics/" + t.id} data-tree=${t.id}>${t.name}</a></td>
        <td>${t.made_by}${t.grown_by_job_id ? html` <a href=${"#/jobs/" + t.grown_by_job_id}>job ${t.grown_by_job_id}</a>` : ""}</td>
        <td>${t.topics}</td><td>${t.leaves}</td><td>${fmtTime(t.updated_at)}</td></tr>`)}</tbody>
    </table></div>`}
  </main>`;
}

function TopicTree({ api, id, onError }) {
  const [tree, setTree] = useState(null);
  const [error, setError] = useState("");
  const [message, setMessage] = useState("");
  // the node being renamed or given a child: {path, op, text}
  const [editing, setEditing] = useState(null);
  useEffect(() => {
    api.get(`/topic-trees/${id}`).then(setTree).catch((err) => { onError(err); setError(errorText(err)); });
  }, [id]);

  async function send(body, done) {
    setError("");
    setMessage("");
    try {
      setTree(await api.post(`/topic-trees/${id}/edits`, body));
      setEditing(null);
      setMessage(done);
    } catch (err) {
      onError(err);
      setError(editError(err));
    }
  }
  function submitEdit(event) {
    event.preventDefault();
    const { op, path, text } = editing;
    const last = path[path.length - 1];
    send({ op, path, topic: text }, op === "rename" ? `Renamed “${last}” to “${text.trim()}”.` : `Added “${text.trim()}” under “${last}”.`);
  }

  if (!tree) return html`<main class="datasets-page"><a class="tree-back" href="#/topics">← All topic trees</a>
    ${error ? html`<p class="error" role="alert">${error}</p>` : html`<p class="muted">Loading topic tree ${id}…</p>`}</main>`;
  return html`<main class="datasets-page topic-tree-page">
    <a class="tree-back" href="#/topics">← All topic trees</a>
    <div class="title-line"><h2 id="tree-name">${tree.name}</h2>
      <span class="muted" id="tree-figures">${tree.topics} topics, ${tree.leaves} leaves · ${tree.made_by}</span></div>
    ${error && html`<p class="error" role="alert" id="tree-error">${error}</p>`}
    ${message && html`<p class="notice" role="status" id="tree-message">${message}</p>`}
    <section class="card"><ul class="topic-tree" id="topic-tree"><${TopicNode} node=${tree.tree} path=${[]}
      editing=${editing} setEditing=${setEditing} send=${send} submitEdit=${submitEdit} /></ul></section>
    <${StartJob} api=${api} tree=${tree} onError=${onError} />
  </main>`;
}

// one topic with its actions, and its subtopics below
function TopicNode({ node, path, editing, setEditing, send, submitEdit }) {
  const here = [...path, node.topic];
  const key = here.join("\u0000");
  const open = editing && editing.path.join("\u0000") === key;
  return html`<li class="topic-node" data-path=${here.join(" > ")}>
    <div class="topic-line">
      <span class="topic-name">${node.topic}</span>
      <span class="topic-actions">
        <button type="button" class="small link rename-topic" onClick=${() => setEditing({ op: "rename", path: here, text: node.topic })}>rename</button>
        <button type="button" class="small link add-topic" onClick=${() => setEditing({ op: "add_child", path: here, text: "" })}>add subtopic</button>
        ${path.length > 0 && html`<button type="button" class="small link delete-topic"
          onClick=${() => send({ op: "delete", path: here }, `Deleted “${node.topic}” and its subtopics.`)}>delete</button>`}
      </span>
    </div>
    ${open && html`<form class="inline-form topic-edit" onSubmit=${submitEdit}>
      <label>${editing.op === "rename" ? "new name" : "new subtopic"}
        <input class="topic-edit-text" value=${editing.text} onInput=${(e) => setEditing({ ...editing, text: e.target.value })} /></label>
      <button type="submit" class="small topic-edit-save">Save</button>
      <button type="button" class="small link" onClick=${() => setEditing(null)}>cancel</button>
    </form>`}
    ${node.children.length > 0 && html`<ul>${node.children.map((c) => html`<${TopicNode} key=${c.topic} node=${c} path=${here} editing=${editing}
      setEditing=${setEditing} send=${send} submitEdit=${submitEdit} />`)}</ul>`}
  </li>`;
}

function StartJob({ api, tree, onError }) {
  const [target, setTarget] = useState("20");
  const [perLeaf, setPerLeaf] = useState("3");
  const [error, setError] = useState("");
  async function start(event) {
    event.preventDefault();
    setError("");
    try {
      const job = await api.post("/jobs", { kind: "topic_tree", params: {
        topic_tree_id: tree.id, target: Number(target), tasks_per_leaf: Number(perLeaf) } });
      go(["jobs", String(job.id)]);
    } catch (err) {
      onError(err);
      setError(editError(err));
    }
  }
  return html`<form class="card inline-form" id="start-topic-job" onSubmit=${start}>
    <h3>Generate from this tree</h3>
    <label>examples <input id="topic-job-target" type="number" min="1" value=${target} onInput=${(e) => setTarget(e.target.value)} /></label>
    <label>tasks per leaf <input id="topic-job-per-leaf" type="number" min="1" value=${perLeaf} onInput=${(e) => setPerLeaf(e.target.value)} /></label>
    <button type="submit" id="topic-job-start">Start a topic_tree job (${tree.leaves} leaves)</button>
    ${error && html`<p class="error" role="alert" id="topic-job-error">${error}</p>`}
  </form>`;
}
