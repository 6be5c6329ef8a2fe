// scanflow-argo UI: every page drawn from the Argo Server API this server speaks. No libraries, no
// network access beyond this server; text from the server is always set as text (never as HTML).
"use strict";

// -- small helpers -------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const svgTags = new Set(["svg", "g", "rect", "circle", "path", "text", "polyline", "title", "line"]);
  const el = svgTags.has(tag) ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...nodes(children));
  return el;
}

// children as DOM nodes: nested lists flattened, null/undefined/false dropped, anything else as text
function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

function put(el, ...children) { el.replaceChildren(...nodes(children)); }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const resp = await fetch(path, init);
  if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new ApiError(401, "log in"); }
  let doc = null;
  try { doc = await resp.json(); } catch (e) { doc = null; }
  if (!resp.ok) throw new ApiError(resp.status, (doc && (doc.message || doc.error)) || resp.statusText);
  return doc;
}

function toast(message, bad) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = "toast" + (bad ? " bad" : "");
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 3000);
}

function badge(text, cls) { return h("span", { class: "badge " + (cls || "phase-" + text), "data-phase": text }, text); }

function parseTime(value) { return value ? new Date(value).getTime() : null; }

function ago(value) {
  const t = parseTime(value);
  if (!t) return "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

function duration(start, end) {
  const a = parseTime(start);
  if (!a) return "";
  const b = parseTime(end) || Date.now();
  let s = Math.max(0, Math.round((b - a) / 1000));
  const hrs = Math.floor(s / 3600); s -= hrs * 3600;
  const min = Math.floor(s / 60); s -= min * 60;
  return (hrs ? hrs + "h " : "") + (hrs || min ? min + "m " : "") + s + "s";
}

function go(path) { history.pushState(null, "", path); route(); }

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a");
  if (!a || a.target === "_blank" || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  ev.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener("popstate", () => route());

// pages register a cleanup (event streams, timers) that runs when another page is drawn
let cleanups = [];
function onLeave(fn) { cleanups.push(fn); }
function leave() { for (const fn of cleanups) { try { fn(); } catch (e) { /* already closed */ } } cleanups = []; }

let info = null;
async function loadInfo() {
  if (info) return info;
  info = await api("GET", "/api/v1/info");
  const links = document.getElementById("links");
  put(links, ...(info.links || []).filter((l) => l.scope === "workflow-list").map((l) => h("a", { href: l.url, target: "_blank", rel: "noopener" }, l.name + " ↗")));
  return info;
}

function route() {
  leave();
  const path = location.pathname;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", path.startsWith("/" + a.dataset.nav));
  const main = document.getElementById("main");
  put(main, h("p", { class: "muted" }, "Loading…"));
  const parts = path.split("/").filter(Boolean);
  let page;
  if (parts[0] === "workflows" && parts.length >= 3) page = workflowPage(main, parts[1], parts[2]);
  else if (parts[0] === "templates") page = templatesPage(main);
  else if (parts[0] === "deployments") page = deploymentsPage(main);
  else if (parts[0] === "agents") page = agentsPage(main);
  else page = workflowsPage(main);
  Promise.resolve(page).catch((err) => { if (err.status !== 401) put(main, h("p", { class: "error" }, String(err.message || err))); });
}

// A watch of the Argo API as server-sent events; reconnects (and re-lists) when the stream ends.
function watch(url, onEvent) {
  let source = null, closed = false;
  const open = () => {
    if (closed) return;
    source = new EventSource(url);
    source.onmessage = (msg) => {
      const doc = JSON.parse(msg.data);
      if (doc.result) onEvent(doc.result);
    };
    source.onerror = () => { source.close(); setTimeout(open, 1500); };
  };
  open();
  onLeave(() => { closed = true; if (source) source.close(); });
}

function every(ms, fn) {
  const id = setInterval(fn, ms);
  onLeave(() => clearInterval(id));
}

// -- Workflows -----------------------------------------------------------------------------------

const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Error"];
const LIST_FIELDS = "metadata,items.metadata.name,items.metadata.namespace,items.metadata.uid,items.metadata.creationTimestamp,items.metadata.labels," +
  "items.status.phase,items.status.message,items.status.startedAt,items.status.finishedAt,items.status.progress,items.spec.suspend";

async function workflowsPage(main) {
  const inf = await loadInfo();
  const q = new URLSearchParams(location.search);
  const state = { namespace: q.get("namespace") ?? "", phase: q.get("phase") || "", labels: q.get("label") || "" };
  const rows = new Map();
  const ns = h("input", { id: "filter-namespace", placeholder: "all namespaces", value: state.namespace, list: "namespaces" });
  const phase = h("select", { id: "filter-phase" }, h("option", { value: "" }, "any phase"), PHASES.map((p) => h("option", { value: p, selected: p === state.phase }, p)));
  const labels = h("input", { id: "filter-label", placeholder: "app=mnist,team in (ml)", value: state.labels, size: 28 });
  const body = h("tbody");
  const count = h("span", { class: "muted" });
  put(main, 
    h("div", { class: "row" }, h("h1", {}, "Workflows"), h("span", { class: "spacer" }), count),
    h("div", { class: "card row filters" },
      h("label", {}, "Namespace", ns), h("label", {}, "Phase", phase), h("label", {}, "Labels", labels),
      h("button", { id: "filter-apply", onclick: () => apply() }, "Filter"),
      h("datalist", { id: "namespaces" }, h("option", { value: inf.managedNamespace || "" }))),
    h("table", { id: "workflow-list" }, h("thead", {}, h("tr", {}, ["Name", "Namespace", "Phase", "Progress", "Started", "Duration", "Message"].map((t) => h("th", {}, t)))), body));
  for (const input of [ns, labels]) input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") apply(); });
  phase.addEventListener("change", () => apply());

  function apply() {
    const p = new URLSearchParams();
    if (ns.value) p.set("namespace", ns.value);
    if (phase.value) p.set("phase", phase.value);
    if (labels.value) p.set("label", labels.value);
    go("/workflows" + (p.toString() ? "?" + p : ""));
  }
  function selector() {
    const parts = [];
    if (state.labels) parts.push(state.labels);
    if (state.phase) parts.push("workflows.argoproj.io/phase in (" + state.phase + ")");
    return parts.join(",");
  }
  function draw() {
    const items = [...rows.values()].sort((a, b) => String(b.metadata.creationTimestamp || "").localeCompare(String(a.metadata.creationTimestamp || "")) || a.metadata.name.localeCompare(b.metadata.name));
    count.textContent = items.length + " workflow" + (items.length === 1 ? "" : "s");
    put(body, ...items.map((wf) => {
      const st = wf.status || {};
      const ph = st.phase || "Pending";
      return h("tr", { "data-name": wf.metadata.name },
        h("td", {}, h("a", { href: "/workflows/" + wf.metadata.namespace + "/" + wf.metadata.name }, wf.metadata.name)),
        h("td", {}, wf.metadata.namespace || ""),
        h("td", {}, badge(ph), wf.spec && wf.spec.suspend ? [" ", badge("Suspended", "badge-suspended")] : null),
        h("td", {}, st.progress || ""),
        h("td", { title: st.startedAt || "" }, ago(st.startedAt || wf.metadata.creationTimestamp)),
        h("td", {}, duration(st.startedAt, st.finishedAt)),
        h("td", { class: "muted" }, (st.message || "").slice(0, 120)));
    }));
    if (!items.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No workflows yet: submit one from Templates, or with scanflow-argo submit.")));
  }
  const sel = selector();
  const params = new URLSearchParams({ fields: LIST_FIELDS });
  if (sel) params.set("listOptions.labelSelector", sel);
  const list = await api("GET", "/api/v1/workflows/" + encodeURIComponent(state.namespace) + "?" + params);
  for (const wf of list.items || []) rows.set(wf.metadata.name, wf);
  draw();
  const wparams = new URLSearchParams({ fields: "result.type," + LIST_FIELDS.replace(/items\./g, "result.object.").replace(/^metadata,/, "") });
  if (sel) wparams.set("listOptions.labelSelector", sel);
  watch("/api/v1/workflow-events/" + encodeURIComponent(state.namespace) + "?" + wparams, (ev) => {
    if (!ev.object || !ev.object.metadata) return;
    if (ev.type === "DELETED") rows.delete(ev.object.metadata.name); else rows.set(ev.object.metadata.name, ev.object);
    draw();
  });
  every(5000, draw);  // durations and "ago" keep moving
}

// -- the workflow graph ------------------------------------------------------------------------

const COLORS = { Succeeded: "#18a87f", Failed: "#d9534f", Error: "#d9534f", Running: "#1e90e6", Pending: "#8fa4b1", Skipped: "#c4ced6", Omitted: "#c4ced6" };
const NODE_W = 170, NODE_H = 40, GAP_X = 26, GAP_Y = 46, SMALL = ["StepGroup", "TaskGroup"];

// The edges to draw: each node's children, except that a DAG's tasks hang under the tasks they depend on
// (read from the DAG's template: ``dependencies`` or the task names in ``depends``), whether the status
// records them under the DAG node or, as Argo does, under the tasks.
function graphEdges(wf) {
  const nodes = (wf.status && wf.status.nodes) || {};
  const templates = Object.fromEntries(((wf.spec && wf.spec.templates) || []).map((t) => [t.name, t]));
  const adj = {};
  for (const [id, n] of Object.entries(nodes)) adj[id] = (n.children || []).filter((c) => nodes[c]);
  for (const [id, n] of Object.entries(nodes)) {
    const tmpl = n.type === "DAG" && templates[n.templateName];
    if (!tmpl || !tmpl.dag) continue;
    const deps = {};
    for (const task of tmpl.dag.tasks || []) {
      const names = task.dependencies || (task.depends ? (task.depends.match(/[A-Za-z0-9][-A-Za-z0-9_]*(?=\.|\b)/g) || []).filter((w) => !["Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"].includes(w)) : []);
      deps[task.name] = names;
    }
    const base = (c) => String(nodes[c].displayName || "").replace(/\(.*\)$/, "");
    const kids = adj[id];
    const roots = [];
    for (const c of kids) {
      const need = deps[base(c)] || [];
      const from = kids.filter((k) => k !== c && need.includes(base(k)));
      if (!from.length) { roots.push(c); continue; }
      for (const f of from) if (!adj[f].includes(c)) adj[f] = [...adj[f], c];
    }
    adj[id] = roots;
  }
  return adj;
}

function layout(wf) {
  const nodes = (wf.status && wf.status.nodes) || {};
  const adj = graphEdges(wf);
  const ids = Object.keys(nodes);
  const parents = {};
  for (const id of ids) for (const c of adj[id]) (parents[c] = parents[c] || []).push(id);
  const root = nodes[wf.metadata.name] ? wf.metadata.name : ids.find((id) => !parents[id]);
  const depth = {};
  if (root) depth[root] = 0;
  for (let pass = 0; pass < ids.length + 1; pass++) {  // longest path from the root (the graph is a DAG)
    let changed = false;
    for (const id of ids) {
      if (depth[id] === undefined) continue;
      for (const child of adj[id]) {
        if (depth[child] === undefined || depth[child] < depth[id] + 1) { depth[child] = depth[id] + 1; changed = true; }
      }
    }
    if (!changed) break;
  }
  for (const id of ids) if (depth[id] === undefined) depth[id] = 0;  // onExit and other roots
  const layers = [];
  const order = {};
  const byStart = (a, b) => String(nodes[a].startedAt || "").localeCompare(String(nodes[b].startedAt || "")) || String(nodes[a].displayName || "").localeCompare(String(nodes[b].displayName || ""));
  for (const id of ids.sort(byStart)) (layers[depth[id]] = layers[depth[id]] || []).push(id);
  layers.forEach((layer, d) => {
    if (d > 0) {  // under their parents, in their parents' order
      const parentPos = (id) => { const ps = (parents[id] || []).filter((p) => order[p] !== undefined); return ps.length ? Math.min(...ps.map((p) => order[p])) : 1e9; };
      layer.sort((a, b) => parentPos(a) - parentPos(b));
    }
    layer.forEach((id, i) => { order[id] = i; });
  });
  const width = Math.max(...layers.map((l) => l.length), 1) * (NODE_W + GAP_X);
  const pos = {};
  layers.forEach((layer, d) => {
    const span = layer.length * (NODE_W + GAP_X);
    layer.forEach((id, i) => { pos[id] = { x: (width - span) / 2 + i * (NODE_W + GAP_X) + GAP_X / 2, y: 16 + d * (NODE_H + GAP_Y) }; });
  });
  return { nodes, adj, pos, width: Math.max(width, 300), height: 32 + layers.length * (NODE_H + GAP_Y) };
}

function drawGraph(wf, selected, onSelect) {
  const { nodes, adj, pos, width, height } = layout(wf);
  const edges = h("g", {});
  const boxes = h("g", {});
  for (const [id, n] of Object.entries(nodes)) {
    const p = pos[id];
    for (const child of adj[id]) {
      const c = pos[child];
      if (!c) continue;
      const x1 = p.x + NODE_W / 2, y1 = p.y + (SMALL.includes(n.type) ? NODE_H / 2 + 6 : NODE_H), x2 = c.x + NODE_W / 2, y2 = c.y + (SMALL.includes(nodes[child].type) ? NODE_H / 2 - 6 : 0);
      edges.append(h("path", { class: "edge", d: `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2}` }));
    }
    const phase = n.phase || "Pending";
    const color = COLORS[phase] || "#8fa4b1";
    const g = h("g", { class: "node" + (id === selected ? " selected" : ""), "data-node": n.displayName || id, "data-id": id, "data-phase": phase, transform: `translate(${p.x},${p.y})`, onclick: () => onSelect(id) },
      h("title", {}, `${n.displayName || id} — ${phase}${n.message ? ": " + n.message : ""}`));
    if (SMALL.includes(n.type)) {
      g.append(h("circle", { class: "dot-" + phase, cx: NODE_W / 2, cy: NODE_H / 2, r: 6, fill: color }));
    } else {
      g.append(h("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
        h("circle", { class: "dot-" + phase, cx: 16, cy: NODE_H / 2, r: 8, fill: color }),
        h("text", { x: 32, y: 17 }, String(n.displayName || id).slice(0, 22)),
        h("text", { class: "sub", x: 32, y: 31 }, (n.type || "") + " · " + phase));
    }
    boxes.append(g);
  }
  return h("svg", { id: "graph", width, height, viewBox: `0 0 ${width} ${height}` }, edges, boxes);
}

async function workflowPage(main, namespace, name) {
  let wf = await api("GET", `/api/v1/workflows/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`);
  let selected = null;
  let logNode = null, logAbort = null;
  const head = h("div", { class: "card" });
  const graph = h("div", { class: "card graph" });
  const panel = h("div", { class: "card panel", id: "node-panel" }, h("p", { class: "muted" }, "Select a node to see its inputs, outputs and logs."));
  put(main, h("h1", {}, h("a", { href: "/workflows" }, "Workflows"), " / ", name), head, h("div", { class: "layout" }, graph, panel));

  const verb = async (what, path, body) => {
    try {
      const doc = await api("PUT", `/api/v1/workflows/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${path}`, body || {});
      toast(what + ": done");
      if (path === "resubmit" && doc && doc.metadata) go(`/workflows/${doc.metadata.namespace}/${doc.metadata.name}`);
    } catch (err) { toast(what + ": " + err.message, true); }
  };
  function drawHead() {
    const st = wf.status || {};
    const ph = st.phase || "Pending";
    const done = ["Succeeded", "Failed", "Error"].includes(ph);
    const suspended = wf.spec && wf.spec.suspend;
    put(head, 
      h("div", { class: "row" },
        h("span", { id: "workflow-phase" }, badge(ph)), suspended ? badge("Suspended", "badge-suspended") : null,
        h("span", {}, "progress " + (st.progress || "0/0")),
        h("span", { class: "muted" }, "started " + (ago(st.startedAt) || "—") + ", " + duration(st.startedAt, st.finishedAt)),
        h("span", { class: "spacer" }),
        h("button", { id: "btn-stop", disabled: done, onclick: () => verb("stop", "stop") }, "Stop"),
        h("button", { id: "btn-terminate", class: "danger", disabled: done, onclick: () => verb("terminate", "terminate") }, "Terminate"),
        suspended ? h("button", { id: "btn-resume", onclick: () => verb("resume", "resume") }, "Resume")
          : h("button", { id: "btn-suspend", disabled: done, onclick: () => verb("suspend", "suspend") }, "Suspend"),
        h("button", { id: "btn-retry", disabled: !["Failed", "Error"].includes(ph), onclick: () => verb("retry", "retry") }, "Retry"),
        h("button", { id: "btn-resubmit", onclick: () => verb("resubmit", "resubmit") }, "Resubmit"),
        h("button", { id: "btn-delete", class: "danger", onclick: async () => {
          if (!confirm(`Delete ${name}?`)) return;
          try { await api("DELETE", `/api/v1/workflows/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`); go("/workflows"); } catch (err) { toast(err.message, true); }
        } }, "Delete")),
      st.message ? h("p", { class: "muted" }, st.message) : null,
      paramTable((wf.spec && wf.spec.arguments && wf.spec.arguments.parameters) || []));
  }
  function paramTable(params) {
    if (!params.length) return null;
    return h("table", { class: "kv" }, h("tbody", {}, params.map((p) => h("tr", {}, h("td", {}, p.name), h("td", {}, p.value ?? p.default ?? "")))));
  }
  function drawGraphNow() { put(graph, drawGraph(wf, selected, (id) => { selected = id; drawGraphNow(); drawPanel(); })); }
  function ioSection(title, io) {
    if (!io) return null;
    const rows = [];
    for (const p of io.parameters || []) rows.push(h("tr", {}, h("td", {}, p.name), h("td", {}, p.value ?? "")));
    if (io.result !== undefined) rows.push(h("tr", {}, h("td", {}, "result"), h("td", {}, io.result)));
    if (io.exitCode !== undefined) rows.push(h("tr", {}, h("td", {}, "exit code"), h("td", {}, io.exitCode)));
    for (const a of io.artifacts || []) {  // where the pod had it, and where the repository keeps it
      const stored = a.s3 ? `s3://${a.s3.bucket || ""}/${a.s3.key || ""}` : a.local && a.local.key ? "artifacts/" + a.local.key : a.key || (a.raw ? "(raw)" : "");
      const where = [a.path, stored].filter(Boolean).join(" → ");
      rows.push(h("tr", { "data-artifact": a.name }, h("td", {}, "artifact " + a.name), h("td", {}, where)));
    }
    if (!rows.length) return null;
    return [h("h3", {}, title), h("table", { class: "kv" }, h("tbody", {}, rows))];
  }
  function drawPanel() {
    const n = selected && wf.status && wf.status.nodes && wf.status.nodes[selected];
    if (!n) return;
    const pre = panel.querySelector("pre.logs");
    put(panel, 
      h("h2", {}, n.displayName || n.id, " ", badge(n.phase || "Pending")),
      h("dl", {},
        h("dt", {}, "type"), h("dd", {}, n.type || ""),
        h("dt", {}, "template"), h("dd", {}, n.templateName || (n.templateRef && n.templateRef.template) || ""),
        n.podName ? [h("dt", {}, "pod"), h("dd", {}, n.podName)] : null,
        h("dt", {}, "started"), h("dd", {}, n.startedAt || "—"),
        h("dt", {}, "duration"), h("dd", {}, duration(n.startedAt, n.finishedAt)),
        n.message ? [h("dt", {}, "message"), h("dd", {}, n.message)] : null),
      ioSection("Inputs", n.inputs), ioSection("Outputs", n.outputs),
      n.type === "Pod" ? [h("h3", {}, "Logs"), pre && logNode === selected ? pre : h("pre", { class: "logs", id: "node-logs" })] : null);
    if (n.type === "Pod" && logNode !== selected) streamLogs(n);
  }
  async function streamLogs(n) {
    if (logAbort) logAbort.abort();
    logNode = selected;
    const pre = panel.querySelector("pre.logs");
    const ctl = new AbortController();
    logAbort = ctl;
    const url = `/api/v1/workflows/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/log?` + new URLSearchParams({ podName: n.podName || n.id, "logOptions.container": "main", "logOptions.follow": "true" });
    try {
      const resp = await fetch(url, { credentials: "same-origin", signal: ctl.signal });
      if (!resp.ok) { const doc = await resp.json().catch(() => ({})); pre.textContent = doc.message || resp.statusText; return; }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const line of lines) {
          if (!line.trim()) continue;
          const doc = JSON.parse(line);
          const target = panel.querySelector("pre.logs") || pre;
          if (doc.result) target.append(doc.result.content + "\n");
          else if (doc.error) target.append("[" + doc.error.message + "]\n");
          target.scrollTop = target.scrollHeight;
        }
      }
    } catch (err) { if (err.name !== "AbortError") pre.append("[" + err.message + "]\n"); }
  }
  onLeave(() => { if (logAbort) logAbort.abort(); });
  drawHead(); drawGraphNow();
  const params = new URLSearchParams({ "listOptions.fieldSelector": "metadata.name=" + name });
  watch(`/api/v1/workflow-events/${encodeURIComponent(namespace)}?${params}`, (ev) => {
    if (!ev.object || !ev.object.metadata) return;
    if (ev.type === "DELETED") { toast(name + " was deleted"); return; }
    wf = ev.object;
    drawHead(); drawGraphNow(); drawPanel();
  });
  every(5000, drawHead);
}

// -- Templates -----------------------------------------------------------------------------------

async function templatesPage(main) {
  const inf = await loadInfo();
  const ns = new URLSearchParams(location.search).get("namespace") ?? (inf.managedNamespace || "");
  const [templates, crons] = await Promise.all([
    api("GET", "/api/v1/workflow-templates/" + encodeURIComponent(ns)),
    api("GET", "/api/v1/cron-workflows/" + encodeURIComponent(ns)),
  ]);
  const tRows = (templates.items || []).map((t) => h("tr", { "data-template": t.metadata.name },
    h("td", {}, t.metadata.name), h("td", {}, t.metadata.namespace || ""),
    h("td", { class: "muted" }, ((t.spec.arguments && t.spec.arguments.parameters) || []).map((p) => p.name).join(", ")),
    h("td", {}, ago(t.metadata.creationTimestamp)),
    h("td", {}, h("button", { class: "primary submit", "data-submit": t.metadata.name, onclick: () => submitDialog("WorkflowTemplate", t) }, "Submit"))));
  const cRows = (crons.items || []).map((c) => h("tr", { "data-cron": c.metadata.name },
    h("td", {}, c.metadata.name), h("td", {}, c.metadata.namespace || ""),
    h("td", {}, c.spec.schedule || (c.spec.schedules || []).join(", ")),
    h("td", {}, c.spec.suspend ? badge("suspended", "badge-suspended") : badge("active", "state-ok")),
    h("td", {},
      h("button", { class: "primary submit", onclick: () => submitDialog("CronWorkflow", c) }, "Submit"), " ",
      h("button", { onclick: async () => {
        try { await api("PUT", `/api/v1/cron-workflows/${encodeURIComponent(c.metadata.namespace)}/${encodeURIComponent(c.metadata.name)}/${c.spec.suspend ? "resume" : "suspend"}`, {}); route(); } catch (err) { toast(err.message, true); }
      } }, c.spec.suspend ? "Resume" : "Suspend"))));
  put(main, 
    h("h1", {}, "Templates"),
    h("p", { class: "muted" }, ns ? "Namespace " + ns + " · " : "", h("a", { href: "/templates?namespace=" }, "all namespaces")),
    h("h2", {}, "WorkflowTemplates"),
    h("table", { id: "template-list" }, h("thead", {}, h("tr", {}, ["Name", "Namespace", "Parameters", "Created", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, tRows.length ? tRows : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "None applied: scanflow-argo apply pipelines.mnist:app")))),
    h("h2", {}, "CronWorkflows"),
    h("p", { class: "muted" }, "Stored and submitted from here; the local platform does not run their schedule."),
    h("table", { id: "cron-list" }, h("thead", {}, h("tr", {}, ["Name", "Namespace", "Schedule", "State", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, cRows.length ? cRows : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "None.")))));
}

// The submit dialog, as the Argo UI builds it from the template's parameters: the description is
// the help text, an enum is a dropdown, the default is filled in.
function submitDialog(kind, tmpl) {
  const spec = kind === "CronWorkflow" ? (tmpl.spec.workflowSpec || {}) : tmpl.spec;
  const params = (spec.arguments && spec.arguments.parameters) || [];
  const inputs = {};
  const fields = params.map((p) => {
    const id = "param-" + p.name;
    const current = p.value ?? p.default ?? (p.enum && p.enum.length ? p.enum[0] : "");
    const input = p.enum
      ? h("select", { id, name: p.name }, p.enum.map((v) => h("option", { value: v, selected: String(v) === String(current) }, v)))
      : h("input", { id, name: p.name, value: current });
    inputs[p.name] = input;
    return h("div", { class: "field" }, h("label", { for: id }, p.name), input, p.description ? h("span", { class: "help" }, p.description) : null);
  });
  const entry = h("select", { id: "submit-entrypoint" }, (spec.templates || []).map((t) => h("option", { value: t.name, selected: t.name === spec.entrypoint }, t.name)));
  const labels = h("input", { id: "submit-labels", placeholder: "key=value,key2=value2" });
  const error = h("p", { class: "error" });
  const close = () => back.remove();
  const send = h("button", { class: "primary", id: "submit-send", onclick: async () => {
    send.disabled = true;
    const submitOptions = { parameters: params.map((p) => p.name + "=" + inputs[p.name].value) };
    if (labels.value) submitOptions.labels = labels.value;
    if (entry.value && entry.value !== spec.entrypoint) submitOptions.entryPoint = entry.value;
    try {
      const wf = await api("POST", "/api/v1/workflows/" + encodeURIComponent(tmpl.metadata.namespace || "") + "/submit",
        { resourceKind: kind, resourceName: tmpl.metadata.name, submitOptions });
      close();
      go(`/workflows/${wf.metadata.namespace}/${wf.metadata.name}`);
    } catch (err) { error.textContent = err.message; send.disabled = false; }
  } }, "Submit");
  const back = h("div", { class: "modal-back", onclick: (ev) => { if (ev.target === back) close(); } },
    h("div", { class: "modal", id: "submit-dialog", role: "dialog" },
      h("h2", {}, "Submit " + tmpl.metadata.name),
      tmpl.metadata.annotations && tmpl.metadata.annotations["workflows.argoproj.io/description"] ? h("p", { class: "muted" }, tmpl.metadata.annotations["workflows.argoproj.io/description"]) : null,
      spec.templates && spec.templates.length ? h("div", { class: "field" }, h("label", { for: "submit-entrypoint" }, "Entrypoint"), entry) : null,
      fields.length ? fields : h("p", { class: "muted" }, "This template takes no parameters."),
      h("div", { class: "field" }, h("label", { for: "submit-labels" }, "Labels"), labels),
      error,
      h("div", { class: "actions" }, h("button", { onclick: close }, "Cancel"), send)));
  document.body.append(back);
}

// -- Deployments ---------------------------------------------------------------------------------

function sparkline(points, format) {
  if (!points.length) return h("svg", { viewBox: "0 0 200 60" }, h("text", { x: 100, y: 34, "text-anchor": "middle", fill: "#8fa4b1", "font-size": 11 }, "no data yet"));
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(0, ...ys), y1 = Math.max(...ys) || 1;
  const coords = points.map(([x, y]) => `${((x - x0) / (x1 - x0 || 1)) * 196 + 2},${56 - ((y - y0) / (y1 - y0 || 1)) * 52}`).join(" ");
  return h("svg", { viewBox: "0 0 200 60", preserveAspectRatio: "none" }, h("polyline", { points: coords }), h("title", {}, "last " + format(ys[ys.length - 1])));
}

// A roll-out as people read it: "step 1/2 · weight 50" (its fields in their order), not JSON.
function rolloutText(rollout) {
  if (typeof rollout !== "object" || rollout === null) return String(rollout);
  return Object.entries(rollout).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => k + " " + (typeof v === "object" ? JSON.stringify(v) : v)).join(" · ");
}

async function deploymentsPage(main) {
  const list = await api("GET", "/scanflow/api/deployments");
  const cards = h("div", { class: "grid-cards" });
  put(main, h("h1", {}, "Deployments"), cards);
  if (!(list.items || []).length) { cards.replaceWith(h("p", { class: "muted", id: "no-deployments" }, "No SeldonDeployment runs locally: scanflow-argo apply pipelines.mnist:app, or scanflow-argo serve models:/NAME@champion.")); return; }
  const charts = {};
  const fmt = { rate: (v) => v.toFixed(2) + " req/s", p95: (v) => (v * 1000).toFixed(0) + " ms", accuracy: (v) => (v * 100).toFixed(1) + " %" };
  function draw(items) {
    put(cards, ...items.map((d) => {
      const model = d.model || {};
      charts[d.name] = charts[d.name] || {};
      const box = h("div", { class: "charts" }, ["rate", "p95", "accuracy"].map((k) => {
        const series = charts[d.name][k] || [];
        const last = series.length ? fmt[k](series[series.length - 1][1]) : "—";
        return h("div", { class: "chart", "data-chart": k }, h("div", { class: "title" }, h("span", {}, { rate: "request rate", p95: "p95 latency", accuracy: "online accuracy" }[k]), h("span", {}, last)), sparkline(series, fmt[k]));
      }));
      return h("div", { class: "card", "data-deployment": d.name },
        h("div", { class: "row" }, h("h2", {}, d.name), badge(d.state, "state-" + d.state), h("span", { class: "spacer" }), h("span", {}, `${d.ready_replicas}/${d.replicas} replicas ready`)),
        h("table", { class: "kv" }, h("tbody", {},
          h("tr", {}, h("td", {}, "model"), h("td", {}, model.name ? `${model.name}${model.version ? " v" + model.version : ""}${model.alias ? " @" + model.alias : ""}` : (d.model_uri || "—"))),
          h("tr", {}, h("td", {}, "model URI"), h("td", {}, d.model_uri || "—")),
          h("tr", {}, h("td", {}, "endpoint"), h("td", {}, d.endpoint || "—")),
          d.rollout ? h("tr", {}, h("td", {}, "roll-out"), h("td", { "data-rollout": "" }, rolloutText(d.rollout))) : null)),
        box);
    }));
  }
  let items = list.items;
  draw(items);
  async function refresh() {
    try {
      items = (await api("GET", "/scanflow/api/deployments")).items || [];
      await Promise.all(items.map(async (d) => { charts[d.name] = (await api("GET", `/scanflow/api/deployments/${encodeURIComponent(d.name)}/metrics?minutes=10`)).series; }));
      draw(items);
    } catch (err) { toast(err.message, true); }
  }
  refresh();
  every(5000, refresh);
}

// -- Agents --------------------------------------------------------------------------------------

async function agentsPage(main) {
  const cards = h("div", { id: "agents" });
  put(main, h("h1", {}, "Agents"), cards);
  async function act(name, what) {
    try { await api("POST", `/scanflow/api/agents/${encodeURIComponent(name)}/${what}`); toast(`${name}: ${what.split("/")[0]} done`); await refresh(); } catch (err) { toast(err.message, true); }
  }
  async function refresh() {
    const list = await api("GET", "/scanflow/api/agents");
    const items = list.items || [];
    if (!items.length) { put(cards, h("p", { class: "muted" }, "No agent in this home: scanflow-argo agent run agents.mnist:drift_supervisor")); return; }
    const decisions = await Promise.all(items.map((a) => api("GET", `/scanflow/api/agents/${encodeURIComponent(a.name)}/decisions?size=15`).catch(() => ({ decisions: [] }))));
    put(cards, ...items.map((a, i) => {
      const st = a.status || {};
      const rules = Object.entries(st.rules || {});
      const sensors = Object.entries(st.sensors || {});
      return h("div", { class: "card", "data-agent": a.name },
        h("div", { class: "row" }, h("h2", {}, a.name),
          a.running ? badge("running", "state-ok") : badge("not running", "badge-off"),
          st.paused ? badge("paused", "badge-paused") : null, st.dry_run ? badge("dry run", "badge-off") : null,
          h("span", { class: "spacer" }),
          h("button", { class: "agent-pause", disabled: !a.running || st.paused, onclick: () => act(a.name, "pause") }, "Pause"),
          h("button", { class: "agent-resume", disabled: !a.running || !st.paused, onclick: () => act(a.name, "resume") }, "Resume")),
        a.error ? h("p", { class: "error" }, a.error) : null,
        rules.length ? [h("h3", {}, "Rules"), h("table", {}, h("thead", {}, h("tr", {}, ["Rule", "Kind", "State", "Since"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rules.map(([name, r]) => h("tr", { "data-rule": name }, h("td", {}, name), h("td", {}, r.kind), h("td", {}, badge(r.state, "state-" + r.state), r.unknown ? " (data stale)" : ""), h("td", {}, r.since ? ago(new Date(r.since * 1000).toISOString()) : "")))))] : null,
        sensors.length ? [h("h3", {}, "Sensors"), h("table", {}, h("thead", {}, h("tr", {}, ["Sensor", "Value", "Age", ""].map((t) => h("th", {}, t)))),
          h("tbody", {}, sensors.map(([name, s]) => h("tr", {}, h("td", {}, name), h("td", {}, s.value === null || s.value === undefined ? "—" : Number(s.value).toPrecision(4), s.stale ? " (stale)" : ""), h("td", {}, s.age === null ? "" : s.age + " s"),
            h("td", {}, h("button", { disabled: !a.running, onclick: () => act(a.name, "trigger/" + encodeURIComponent(name)) }, "Trigger"))))))] : null,
        h("h3", {}, "Recent decisions"),
        h("table", { class: "decisions" }, h("thead", {}, h("tr", {}, ["When", "Kind", "Rule / action", "Event / status", "Reason"].map((t) => h("th", {}, t)))),
          h("tbody", {}, (decisions[i].decisions || []).map((d) => h("tr", {},
            h("td", {}, d.t ? ago(new Date(d.t * 1000).toISOString()) : ""), h("td", {}, d.kind || ""),
            h("td", {}, d.rule || d.action || ""), h("td", {}, d.event || d.status || ""), h("td", { class: "muted" }, d.reason || ""))))));
    }));
  }
  await refresh();
  every(3000, () => refresh().catch(() => {}));
}

loadInfo().catch(() => {});
route();
