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
    el("div", { class: "stat" }, el("b", {}, (saved * 100).toFixed(0) + "%"), el("span", {}, "saved by sharing and compression")),
    el("div", { class: "stat" }, el("b", {}, pool.dedup_ratio.toFixed(2) + "×"), el("span", {}, "deduplication")),
    el("div", { class: "stat" }, el("b", {}, pool.compression_ratio.toFixed(2) + "×"), el("span", {}, "compression")));
  const rows = volumes.map((v) => el("tr", {},
    el("td", {}, el("a", { href: "#/volume/" + encodeURIComponent(v.name) }, v.name)),
    el("td", { class: "num" }, size(v.logical_bytes)),
    el("td", { class: "num" }, v.quota == null ? "–" : size(v.quota)),
    el("td", { class: "num" }, v.files),
    el("td", { class: "num" }, v.snapshots),
    el("td", {}, v.origin || "–")));
  const history = el("div", { id: "history" }, el("p", { class: "muted" }, "Loading the history…"));
  // After the first page: the pool's sampled totals, and every snapshot.
  Promise.all([api("GET", "/pool/history"), api("GET", "/snapshots")])
    .then(([samples, snaps]) => history.replaceChildren(sampledCharts(samples), historyChart(snaps, pool)))
    .catch((e) => history.replaceChildren(el("p", { class: "error" }, e.message)));
  show(
    el("section", { class: "card" }, el("h1", {}, "Pool"), stats, spaceBar(pool)),
    el("section", { class: "card" }, el("h2", {}, "Space over time"), history),
    el("section", { class: "card" }, el("h2", {}, "Clone trees"), cloneTree(volumes)),
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

// Lines over time: each series a label, a colour and [time, value] points.
function lineChart(series, format, label) {
  const w = 900, h = 160, left = 80, right = 20, top = 10, bottom = 26;
  const all = series.flatMap((s) => s.points);
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
  const max = Math.max(...all.map((p) => p[1]), 1e-9) * 1.05;
  const x = (t) => left + (w - left - right) * (t - t0) / (t1 - t0);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img", "aria-label": label });
  for (const line of series) {
    s.append(svg("path", { d: line.points.map(([t, v], i) => `${i ? "L" : "M"}${x(t)},${y(v)}`).join(""),
      fill: "none", stroke: line.color, "stroke-width": 2 }));
    const [tl, vl] = line.points[line.points.length - 1];
    s.append(svg("text", { x: 0, y: y(vl) + 4, fill: line.color }, format(vl)));
    s.append(svg("circle", { cx: x(tl), cy: y(vl), r: 3, fill: line.color }));
  }
  const day = (t) => new Date(t).toISOString().slice(0, 16).replace("T", " ");
  s.append(svg("text", { x: left, y: h - 6 }, day(t0)));
  s.append(svg("text", { x: w - right, y: h - 6, "text-anchor": "end" }, day(t1)));
  return s;
}

// The pool's totals as the server sampled them: bytes as files against
// bytes stored, and the dedup and compression ratios, over time.
function sampledCharts(samples) {
  if (samples.length < 2)
    return el("p", { class: "muted", id: "ratios" },
      "The server records the pool's totals at start, every 10 minutes (--sample-every) and after each gc; " +
      "the dedup and compression chart appears with the second sample that differs from the first.");
  const at = (s) => s.at / 1e6;
  const ratio = (a, b) => (b ? a / b : 1);
  const bytes = lineChart([
    { color: "#9db4f5", points: samples.map((s) => [at(s), s.logical_bytes]) },
    { color: "#2f5bd3", points: samples.map((s) => [at(s), s.stored_bytes]) }], size,
    "bytes as files and stored, over time");
  const ratios = lineChart([
    { color: "#2f5bd3", points: samples.map((s) => [at(s), ratio(s.logical_bytes, s.unique_bytes)]) },
    { color: "#1a7f4b", points: samples.map((s) => [at(s), ratio(s.unique_bytes, s.compressed_bytes)]) }],
    (v) => v.toFixed(2) + "×", "deduplication and compression ratios, over time");
  return el("div", { id: "ratios" },
    el("h3", {}, "Stored against as files"), bytes,
    el("p", { class: "muted" }, "Light: every volume and snapshot as plain copies. Dark: what the pool stores."),
    el("h3", {}, "Deduplication and compression"), ratios,
    el("p", { class: "muted" }, `Blue: deduplication (as files ÷ distinct). Green: compression (distinct ÷ compressed). ${samples.length} samples.`),
    el("h3", {}, "Snapshots as they were taken"));
}

// What the snapshots would take as plain copies, accumulating as they are
// taken (a step line), against what the whole pool stores today.
function historyChart(snaps, pool) {
  if (!snaps.length) return el("p", { class: "muted" }, "No snapshots yet.");
  const w = 900, h = 180, left = 80, right = 20, top = 10, bottom = 30;
  const times = snaps.map((s) => Date.parse(s.created));
  const t0 = times[0], t1 = Math.max(times[times.length - 1], t0 + 1);
  let total = 0;
  const points = snaps.map((s, i) => [times[i], (total += s.logical_bytes)]);
  const max = Math.max(total, pool.stored_bytes, 1);
  const x = (t) => left + (w - left - right) * (t - t0) / (t1 - t0);
  const y = (b) => top + (h - top - bottom) * (1 - b / max);
  const path = points.map(([t, b], i) => (i ? `H${x(t)}V${y(b)}` : `M${x(t)},${y(0)}V${y(b)}`)).join("");
  const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img",
    "aria-label": `${snaps.length} snapshots would take ${size(total)} as copies; the pool stores ${size(pool.stored_bytes)}` });
  s.append(svg("path", { d: path, fill: "none", stroke: "#9db4f5", "stroke-width": 2 }));
  s.append(svg("line", { x1: left, x2: w - right, y1: y(pool.stored_bytes), y2: y(pool.stored_bytes), stroke: "#2f5bd3", "stroke-dasharray": "4 3" }));
  s.append(svg("text", { x: 0, y: y(total) + 4 }, size(total)));
  s.append(svg("text", { x: 0, y: y(pool.stored_bytes) + 4 }, size(pool.stored_bytes)));
  s.append(svg("text", { x: left, y: h - 8 }, snaps[0].created.slice(0, 10)));
  s.append(svg("text", { x: w - right, y: h - 8, "text-anchor": "end" }, snaps[snaps.length - 1].created.slice(0, 10)));
  return el("div", {}, s, el("p", { class: "muted" },
    `Light: the ${snaps.length} snapshots as plain copies, as they were taken. Dashed: what the pool stores now.`));
}

// Volumes nested under the volume they were cloned from (origins the
// token cannot see, or deleted, make a volume a root).
function cloneTree(volumes) {
  const names = new Set(volumes.map((v) => v.name));
  const parent = (v) => (v.origin || "").split("@")[0];
  const children = new Map();
  for (const v of volumes) {
    const p = names.has(parent(v)) ? parent(v) : "";
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(v);
  }
  const branch = (p) => el("ul", { class: "tree" }, (children.get(p) || []).map((v) => el("li", {},
    el("a", { href: "#/volume/" + encodeURIComponent(v.name) }, v.name),
    v.origin ? el("span", { class: "muted" }, ` from ${v.origin}`) : "",
    children.has(v.name) ? branch(v.name) : "")));
  const withClones = volumes.some((v) => v.origin);
  return el("div", { id: "clone-tree" }, withClones ? branch("") : el("p", { class: "muted" }, "No clones yet."));
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
    diffCard(name, snaps),
    el("section", { class: "card" }, el("h2", {}, "Lineage"), lineageGraph(lineage)));
}

// Two states of a volume (snapshots or its current state), and what changed between them.
function diffCard(name, snaps) {
  const choices = () => [el("option", { value: name }, "current state"),
    ...snaps.map((s) => el("option", { value: `${name}@${s.name}` }, s.name))];
  const a = el("select", { id: "diff-a" }, choices()), b = el("select", { id: "diff-b" }, choices());
  if (snaps.length) a.value = `${name}@${snaps[snaps.length - 1].name}`;
  const out = el("div", { id: "diff" });
  const form = el("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const q = (stat) => `/diff?a=${encodeURIComponent(a.value)}&b=${encodeURIComponent(b.value)}&stat=${stat}`;
      const [stat, changes] = await Promise.all([api("GET", q(true)), api("GET", q(false))]);
      out.replaceChildren(
        el("p", {}, `${stat.added} added, ${stat.removed} removed, ${stat.modified} modified; +${size(stat.bytes_added)} −${size(stat.bytes_removed)}`),
        el("table", {}, el("tbody", {}, changes.slice(0, 500).map((c) => el("tr", {},
          el("td", { class: "change-" + ({ added: "A", removed: "D", modified: "M" }[c.change] || "M") }, c.change),
          el("td", {}, c.path + (c.kind === "dir" ? "/" : "")),
          el("td", { class: "num" }, c.change === "removed" ? size(c.old_size) : size(c.new_size)))))),
        changes.length > 500 ? el("p", { class: "muted" }, `… and ${changes.length - 500} more`) : "");
    } catch (e) { out.replaceChildren(el("p", { class: "error", role: "alert" }, e.message)); }
  } },
    el("div", {}, el("label", { for: "diff-a" }, "From"), a),
    el("div", {}, el("label", { for: "diff-b" }, "to"), b), el("button", { type: "submit" }, "Compare"));
  return el("section", { class: "card" }, el("h2", {}, "Changes"), form, out);
}

// -- jobs: verify and gc started here, all running jobs with progress --------------
let jobTimer = null;
async function jobs() {
  const list = await api("GET", "/jobs");
  const status = el("p", { class: "error", role: "alert" });
  const start = (body) => async () => {
    try { await api("POST", "/jobs", body); await jobs(); } catch (e) { status.textContent = e.message; }
  };
  const rows = list.map((j) => el("tr", {},
    el("td", {}, j.id), el("td", {}, j.kind), el("td", {}, j.target), el("td", {}, j.state),
    el("td", { class: "num" }, `${j.files} · ${size(j.bytes)}`),
    el("td", { class: "num" }, (j.elapsed_ms / 1000).toFixed(1) + " s"),
    el("td", {}, j.error || (j.result ? summary(j) : "")),
    el("td", {}, j.state === "running" && j.cancellable ? el("button", { class: "danger", onclick: async () => {
      try { await api("DELETE", "/jobs/" + j.id); await jobs(); } catch (e) { status.textContent = e.message; }
    } }, "Cancel") : "")));
  show(el("section", { class: "card" }, el("h1", {}, "Jobs"),
    el("div", { class: "row" },
      el("button", { onclick: start({ kind: "verify" }) }, "Verify the pool"),
      el("button", { class: "quiet", onclick: start({ kind: "verify", read_data: true }) }, "Verify, re-reading every byte"),
      el("button", { class: "quiet", onclick: start({ kind: "gc", dry_run: true }) }, "What would gc free?"),
      el("button", { class: "danger", onclick: start({ kind: "gc" }) }, "Collect garbage")),
    status,
    el("table", { id: "jobs" }, el("thead", {}, el("tr", {}, ["Id", "Kind", "Target", "State", "Done", "Time", "Result", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))));
  clearTimeout(jobTimer);
  if (list.some((j) => j.state === "running")) jobTimer = setTimeout(() => location.hash === "#/jobs" && jobs().catch(failure), 1000);
}

function summary(j) {
  const r = j.result;
  if (j.kind === "verify") return `${r.roots} roots, ${r.chunks} chunks: ${r.problems.length} problems`;
  if (j.kind === "gc") return `${size(r.freed_bytes)} in ${r.freed_blobs} objects`;
  if (j.kind.startsWith("mirror_"))
    return r.snapshots.length ? `sent ${r.snapshots.join(", ")} (${size(r.bytes)})` : "up to date";
  return JSON.stringify(r).slice(0, 120);
}

// -- mirrors and their lag ------------------------------------------------------------
async function mirrors() {
  const list = await api("GET", "/mirrors");
  const status = el("p", { class: "error", role: "alert" });
  const ago = (s) => s == null ? "–" : s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  const rows = list.map((m) => el("tr", {},
    el("td", {}, el("a", { href: "#/volume/" + encodeURIComponent(m.volume) }, m.volume)),
    el("td", {}, `${m.source_pool} :: ${m.source_volume}`), el("td", {}, m.state),
    el("td", {}, m.last_snapshot || "–"), el("td", { class: "num" }, ago(m.lag_seconds)),
    el("td", {}, el("button", { class: "quiet", onclick: async () => {
      try { await api("POST", "/jobs", { kind: "mirror_update", volume: m.volume }); location.hash = "#/jobs"; }
      catch (e) { status.textContent = e.message; }
    } }, "Update"))));
  show(el("section", { class: "card" }, el("h1", {}, "Mirrors"), status,
    list.length ? el("table", { id: "mirrors" }, el("thead", {}, el("tr", {},
      ["Mirror", "Source", "State", "Last snapshot", "Lag", ""].map((h) => el("th", {}, h)))), el("tbody", {}, rows))
      : el("p", { class: "muted" }, "No mirrors: shale mirror create makes one (on the pool, or with --server).")));
}

// -- tokens (admins) --------------------------------------------------------------
async function tokens() {
  const list = await api("GET", "/tokens");
  const status = el("p", { class: "error", role: "alert" });
  const shown = el("div", { id: "new-token", "aria-live": "polite" });
  const role = el("select", { id: "token-role" }, ["read", "write", "admin"].map((r) => el("option", { value: r }, r)));
  const vol = el("input", { id: "token-volume", placeholder: "every volume" });
  const note = el("input", { id: "token-note" });
  const days = el("input", { id: "token-days", type: "number", min: "0", max: "36500", placeholder: "never" });
  const form = el("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const made = await api("POST", "/tokens", { role: role.value, volume: vol.value || null, note: note.value,
        expires_days: days.value ? Number(days.value) : null });
      await tokens();
      $("new-token").replaceChildren(el("p", {}, `Token ${made.id}, shown only now:`), el("code", { class: "secret" }, made.token));
    } catch (e) { status.textContent = e.message; }
  } },
    el("div", {}, el("label", { for: "token-role" }, "Role"), role),
    el("div", {}, el("label", { for: "token-volume" }, "Volume"), vol),
    el("div", {}, el("label", { for: "token-note" }, "Note"), note),
    el("div", {}, el("label", { for: "token-days" }, "Expires in days"), days),
    el("button", { type: "submit" }, "Create token"));
  const when = (ns) => ns == null ? "–" : new Date(ns / 1e6).toISOString().slice(0, 16).replace("T", " ");
  const rows = list.map((t) => el("tr", {},
    el("td", {}, t.id), el("td", {}, t.role), el("td", {}, t.volume || "every volume"), el("td", {}, when(t.created)),
    el("td", {}, when(t.expires)), el("td", {}, t.revoked == null ? "active" : "revoked"), el("td", {}, t.note),
    el("td", {}, t.revoked == null ? el("button", { class: "danger", onclick: async () => {
      if (!confirm(`Revoke token ${t.id}? What uses it stops working.`)) return;
      try { await api("DELETE", "/tokens/" + t.id); await tokens(); } catch (e) { status.textContent = e.message; }
    } }, "Revoke") : "")));
  show(el("section", { class: "card" }, el("h1", {}, "Tokens"), form, shown, status,
    el("table", { id: "tokens" }, el("thead", {}, el("tr", {},
      ["Id", "Role", "Volume", "Created", "Expires", "State", "Note", ""].map((h) => el("th", {}, h)))), el("tbody", {}, rows))));
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
  $("nav").hidden = !signedIn;
  if (!signedIn) { $("view").replaceChildren(); $("who").textContent = ""; $("token").focus(); return; }
  try {
    const pool = await api("GET", "/pool");
    $("who").textContent = `${pool.token.role} token` + (pool.token.volume ? ` for ${pool.token.volume}` : "");
    $("nav-tokens").hidden = pool.token.role !== "admin";
    const m = location.hash.match(/^#\/volume\/(.+)$/);
    if (m) await volume(decodeURIComponent(m[1]));
    else if (location.hash === "#/jobs") await jobs();
    else if (location.hash === "#/mirrors") await mirrors();
    else if (location.hash === "#/tokens") await tokens();
    else await overview();
  } catch (e) {
    if (token) failure(e);
  }
}

window.addEventListener("hashchange", route);
route();
