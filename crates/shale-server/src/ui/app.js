// The Shale dashboard: plain DOM over /api/v1, the token kept in this
// tab's sessionStorage. Every name from the server goes in as text, never
// as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("shale-token") || "";

async function api(method, path, body) {
  const r = await fetch("/api/v1" + path, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await r.json().catch(() => null);
  if (r.status === 401) signOut();
  if (!r.ok) throw new Error((answer && answer.error) || r.statusText);
  return answer;
}

// el("td", {class: "num"}, "text", child…): an element with attributes and children.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const svgNs = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function show(...nodes) {
  $("view").replaceChildren(...nodes);
  $("main").focus();
}

function failure(e) {
  show(el("div", { class: "card" }, el("p", { class: "error", role: "alert" }, e.message)));
}

// -- sign in ---------------------------------------------------------------------
function signOut() {
  token = "";
  sessionStorage.removeItem("shale-token");
  route();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  try {
    await api("GET", "/pool");
    sessionStorage.setItem("shale-token", token);
    $("token").value = "";
    route();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});
$("logout").addEventListener("click", signOut);

// -- the pool and its volumes ------------------------------------------------------------
async function overview() {
  const [pool, volumes] = await Promise.all([api("GET", "/pool"), api("GET", "/volumes")]);
  const saved = pool.logical_bytes ? 1 - pool.stored_bytes / pool.logical_bytes : 0;
  const stats = el("div", { class: "stats" },
    el("div", { class: "stat" }, el("b", {}, volumes.length), el("span", {}, "volumes")),
    el("div", { class: "stat" }, el("b", {}, pool.snapshots), el("span", {}, "snapshots in the pool")),
    el("div", { class: "stat" }, el("b", {}, size(pool.logical_bytes)), el("span", {}, "as files")),
    el("div", { class: "stat" }, el("b", {}, size(pool.stored_bytes)), el("span", {}, "stored")),
    el("div", { class: "stat" }, el("b", {}, (saved * 100).toFixed(0) + "%"), el("span", {}, "saved by sharing and compression")));
  const rows = volumes.map((v) => el("tr", {},
    el("td", {}, el("a", { href: "#/volume/" + encodeURIComponent(v.name) }, v.name)),
    el("td", { class: "num" }, size(v.logical_bytes)),
    el("td", { class: "num" }, v.quota == null ? "–" : size(v.quota)),
    el("td", { class: "num" }, v.files),
    el("td", { class: "num" }, v.snapshots),
    el("td", {}, v.origin || "–")));
  show(
    el("section", { class: "card" }, el("h1", {}, "Pool"), stats, spaceBar(pool)),
    el("section", { class: "card" }, el("h2", {}, "Volumes"),
      el("table", {}, el("thead", {}, el("tr", {},
        el("th", {}, "Name"), el("th", { class: "num" }, "Size"), el("th", { class: "num" }, "Quota"),
        el("th", { class: "num" }, "Files"), el("th", { class: "num" }, "Snapshots"), el("th", {}, "Clone of"))),
      el("tbody", {}, rows))));
}

// Logical bytes against what is stored: the space sharing saves, as bars.
function spaceBar(pool) {
  const w = 600, max = Math.max(pool.logical_bytes, pool.stored_bytes, 1);
  const s = svg("svg", { viewBox: `0 0 ${w} 64`, width: "100%", role: "img",
    "aria-label": `${size(pool.logical_bytes)} as files, ${size(pool.stored_bytes)} stored` });
  [["as files", pool.logical_bytes, "#9db4f5", 6], ["stored", pool.stored_bytes, "#2f5bd3", 36]].forEach(([label, n, color, y]) => {
    s.append(svg("rect", { x: 80, y, width: Math.max(1, (w - 180) * n / max), height: 22, fill: color }));
    s.append(svg("text", { x: 0, y: y + 16 }, label));
    s.append(svg("text", { x: 86 + (w - 180) * n / max, y: y + 16 }, size(n)));
  });
  return s;
}

// -- one volume: its snapshots on a timeline, actions, lineage ----------------------------
async function volume(name) {
  const path = "/volumes/" + encodeURIComponent(name);
  const [v, snaps, lineage] = await Promise.all([
    api("GET", path), api("GET", path + "/snapshots"), api("GET", path + "/lineage")]);
  const status = el("p", { class: "error", role: "alert" });
  const act = (work) => async (ev) => {
    ev.preventDefault();
    try { await work(); await volume(name); } catch (e) { status.textContent = e.message; }
  };
  const snapName = el("input", { id: "snapshot-name", placeholder: "name (optional)" });
  const snapForm = el("form", { class: "row", onsubmit: act(() => api("POST", path + "/snapshots", { name: snapName.value || null })) },
    el("div", {}, el("label", { for: "snapshot-name" }, "New snapshot"), snapName), el("button", { type: "submit" }, "Snapshot"));
  const cloneName = el("input", { id: "clone-name", required: "" });
  const cloneFrom = el("select", { id: "clone-from" }, el("option", { value: "" }, "current state"),
    snaps.map((s) => el("option", { value: s.name }, s.name)));
  const cloneForm = el("form", { class: "row", onsubmit: act(() => api("POST", path + "/clone", { name: cloneName.value, snapshot: cloneFrom.value || null })) },
    el("div", {}, el("label", { for: "clone-name" }, "Clone as"), cloneName),
    el("div", {}, el("label", { for: "clone-from" }, "from"), cloneFrom), el("button", { type: "submit" }, "Clone"));
  const rows = snaps.slice().reverse().map((s) => el("tr", {},
    el("td", {}, s.name), el("td", {}, s.created), el("td", {}, el("code", {}, s.id.slice(0, 12))),
    el("td", { class: "num" }, size(s.logical_bytes)),
    el("td", {},
      el("button", { class: "quiet", onclick: act(async () => {
        if (confirm(`Put ${name} back to ${s.name}? Changes since are discarded.`))
          await api("POST", `${path}/snapshots/${encodeURIComponent(s.name)}/restore`);
      }) }, "Restore"), " ",
      el("button", { class: "danger", onclick: act(async () => {
        if (confirm(`Delete snapshot ${name}@${s.name}?`))
          await api("DELETE", `${path}/snapshots/${encodeURIComponent(s.name)}`);
      }) }, "Delete"))));
  const del = el("button", { class: "danger", onclick: async () => {
    if (!confirm(`Delete volume ${name} and its ${snaps.length} snapshot(s)?`)) return;
    try { await api("DELETE", path); location.hash = "#/"; } catch (e) { status.textContent = e.message; }
  } }, "Delete volume");
  show(
    el("section", { class: "card" }, el("h1", {}, v.name),
      el("p", { class: "muted" }, `${size(v.logical_bytes)} in ${v.files} files · ${v.snapshots} snapshots`,
        v.origin ? ` · clone of ${v.origin}` : "", v.quota != null ? ` · quota ${size(v.quota)}` : ""),
      snapForm, cloneForm, status, del),
    el("section", { class: "card" }, el("h2", {}, "Snapshots"), timeline(snaps),
      el("table", { id: "snapshots" }, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Taken"),
        el("th", {}, "Id"), el("th", { class: "num" }, "Size"), el("th", {}, ""))), el("tbody", {}, rows))),
    el("section", { class: "card" }, el("h2", {}, "Lineage"), lineageGraph(lineage)));
}

// Snapshots as dots on a time axis.
function timeline(snaps) {
  const w = 900, h = 70;
  const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", id: "timeline", role: "img",
    "aria-label": `${snaps.length} snapshots over time` });
  s.append(svg("line", { x1: 20, y1: 40, x2: w - 20, y2: 40, stroke: "#d9dde5", "stroke-width": 2 }));
  if (!snaps.length) return s;
  const times = snaps.map((x) => Date.parse(x.created));
  const t0 = Math.min(...times), t1 = Math.max(...times), span = Math.max(t1 - t0, 1);
  snaps.forEach((x, i) => {
    const cx = snaps.length === 1 ? w / 2 : 20 + (w - 40) * (times[i] - t0) / span;
    const dot = svg("circle", { cx, cy: 40, r: 6, fill: "#2f5bd3" });
    dot.append(svg("title", {}, `${x.name} · ${x.created}`));
    s.append(dot, svg("text", { x: cx, y: 22, "text-anchor": "middle" }, x.name));
  });
  return s;
}

// Dataset snapshots → runs → model snapshots, and clones, as a graph.
function lineageGraph(l) {
  const runs = [...l.produced_by, ...l.used_by].filter((r, i, all) => all.findIndex((q) => q.id === r.id) === i);
  const box = el("div", { id: "lineage" });
  if (l.origins.length) box.append(el("p", {}, "Cloned from " + l.origins.join(" ← ")));
  if (l.clones.length) box.append(el("p", {}, "Clones: " + l.clones.join(", ")));
  if (!runs.length) { box.append(el("p", { class: "muted" }, "No run read or wrote this volume.")); return box; }
  const rowH = 70, w = 900, h = runs.length * rowH + 10;
  const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img", "aria-label": "lineage of runs" });
  runs.forEach((r, i) => {
    const y = 10 + i * rowH + 25;
    const node = (x, label, color) => {
      s.append(svg("rect", { x: x - 120, y: y - 18, width: 240, height: 36, rx: 6, fill: "#fff", stroke: color }));
      s.append(svg("text", { x, y: y + 4, "text-anchor": "middle" }, label));
    };
    const runLabel = `run ${r.id}` + (r.mlflow_run ? ` · MLflow ${r.mlflow_run.slice(0, 8)}` : "")
      + (r.exit_code === 0 ? "" : ` · exit ${r.exit_code}`);
    r.inputs.forEach((d) => node(140, `${d.volume}@${d.snapshot}`, "#9db4f5"));
    node(450, runLabel, "#2f5bd3");
    r.outputs.forEach((d) => node(760, `${d.volume}@${d.snapshot}`, "#1d7a46"));
    if (r.inputs.length) s.append(svg("line", { x1: 260, y1: y, x2: 330, y2: y, stroke: "#5b6475" }));
    if (r.outputs.length) s.append(svg("line", { x1: 570, y1: y, x2: 640, y2: y, stroke: "#5b6475" }));
  });
  box.append(s);
  return box;
}

// -- routing --------------------------------------------------------------------
async function route() {
  const signedIn = Boolean(token);
  $("login").hidden = signedIn;
  $("logout").hidden = !signedIn;
  if (!signedIn) { $("view").replaceChildren(); $("who").textContent = ""; $("token").focus(); return; }
  try {
    const pool = await api("GET", "/pool");
    $("who").textContent = `${pool.token.role} token` + (pool.token.volume ? ` for ${pool.token.volume}` : "");
    const m = location.hash.match(/^#\/volume\/(.+)$/);
    if (m) await volume(decodeURIComponent(m[1]));
    else await overview();
  } catch (e) {
    if (token) failure(e);
  }
}

window.addEventListener("hashchange", route);
route();
