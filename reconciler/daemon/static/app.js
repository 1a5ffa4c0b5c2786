// Status page: fetches /api/status every 5 s and draws each environment's stack graph as SVG.
"use strict";

const COLORS = { applied: "#2e7d32", unchanged: "#558b2f", drifted: "#ef6c00", blocked: "#6a1b9a",
                 failed: "#c62828", pending: "#757575", planned: "#1565c0" };
const BOX_W = 170, BOX_H = 58, GAP_X = 50, GAP_Y = 18, PAD = 10;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text = "") {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

// Wave of a stack = length of its longest dependency chain (stacks in one wave apply together).
function waves(stacks) {
  const byName = Object.fromEntries(stacks.map(s => [s.name, s]));
  const memo = {};
  const wave = (name, seen = new Set()) => {
    if (name in memo) return memo[name];
    if (seen.has(name) || !byName[name]) return 0;
    seen.add(name);
    const deps = byName[name].depends_on || [];
    memo[name] = deps.length ? 1 + Math.max(...deps.map(d => wave(d, seen))) : 0;
    return memo[name];
  };
  stacks.forEach(s => wave(s.name));
  return memo;
}

function drawGraph(stacks) {
  const w = waves(stacks);
  const columns = {};
  stacks.forEach(s => (columns[w[s.name]] = columns[w[s.name]] || []).push(s));
  const pos = {};
  let rows = 1;
  Object.entries(columns).forEach(([col, list]) => {
    rows = Math.max(rows, list.length);
    list.forEach((s, i) => (pos[s.name] = { x: PAD + col * (BOX_W + GAP_X), y: PAD + i * (BOX_H + GAP_Y) }));
  });
  const ncols = Object.keys(columns).length || 1;
  const width = PAD * 2 + ncols * BOX_W + (ncols - 1) * GAP_X;
  const height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y;
  const svg = svgEl("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const defs = svgEl("defs");
  const marker = svgEl("marker", { id: "arrow", markerWidth: 8, markerHeight: 8, refX: 7, refY: 4, orient: "auto" });
  marker.appendChild(svgEl("path", { d: "M0,0 L8,4 L0,8 z", fill: "#90a4ae" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  stacks.forEach(s => (s.depends_on || []).forEach(d => {
    if (!pos[d]) return;
    svg.appendChild(svgEl("line", { x1: pos[d].x + BOX_W, y1: pos[d].y + BOX_H / 2, x2: pos[s.name].x - 2,
      y2: pos[s.name].y + BOX_H / 2, stroke: "#90a4ae", "stroke-width": 2, "marker-end": "url(#arrow)" }));
  }));
  stacks.forEach(s => {
    const state = s.display_state || "pending";
    const g = svgEl("g", { class: "stack", "data-stack": s.name, "data-state": state });
    const p = pos[s.name];
    g.appendChild(svgEl("rect", { x: p.x, y: p.y, width: BOX_W, height: BOX_H, rx: 6, fill: COLORS[state] || COLORS.pending }));
    g.appendChild(svgEl("text", { x: p.x + 10, y: p.y + 22 }, s.name));
    const extra = [state, s.drift_count ? `${s.drift_count} drifted` : "", s.violations.length ? `${s.violations.length} violations` : ""]
      .filter(Boolean).join(" · ");
    g.appendChild(svgEl("text", { x: p.x + 10, y: p.y + 42, class: "sub" }, extra));
    g.appendChild(svgEl("title", {}, `${s.name}: ${state}${s.reason ? " — " + s.reason : ""}`));
    svg.appendChild(g);
  });
  return svg;
}

function envSection(env) {
  const box = el("div", { class: "env", "data-env": env.name });
  box.appendChild(el("h2", {}, `Environment ${env.name}`));
  const facts = el("div", { class: "facts" });
  const last = env.last_run;
  [["branch", env.source.branch], ["commit", last && last.commit ? last.commit.slice(0, 10) : "–"],
   ["last run", last ? `${last.state} ${last.finished_at || ""}` : "–"], ["next run", env.next_run || "–"],
   ["drift", env.drift_count === null ? "not checked" : String(env.drift_count)],
   ["leader", env.leader === null ? "n/a" : String(env.leader)],
   ["running", env.running ? env.running.id : "no"], ["queued", env.queued ? env.queued.id : "no"]]
    .forEach(([k, v]) => facts.appendChild(el("span", {}, `${k}: ${v}`)));
  box.appendChild(facts);
  const legend = el("div", { class: "legend" });
  Object.keys(COLORS).forEach(k => legend.appendChild(el("span", { class: `badge state-${k}` }, k)));
  box.appendChild(legend);
  box.appendChild(drawGraph(env.stacks));
  const problems = el("ul", { class: "plain" });
  env.stacks.forEach(s => {
    s.violations.forEach(v => problems.appendChild(el("li", {}, `⚠ ${s.name}: [${v.severity}] ${v.rule} ${v.object}: ${v.message}`)));
    if (s.reason && (s.state === "failed" || s.state === "blocked")) problems.appendChild(el("li", {}, `✖ ${s.name}: ${s.reason}`));
  });
  box.appendChild(problems);
  return box;
}

function render(status) {
  const envs = document.getElementById("envs");
  envs.replaceChildren(...status.envs.map(envSection));
  const tbody = document.querySelector("#runs tbody");
  tbody.replaceChildren(...status.runs.map(r => {
    const tr = el("tr");
    [r.id, r.env, r.stack || "all", r.sources.join(", ")].forEach(v => tr.appendChild(el("td", {}, v)));
    const td = el("td"); td.appendChild(el("span", { class: `badge state-${r.state}` }, r.state)); tr.appendChild(td);
    [r.commit ? r.commit.slice(0, 10) : "", r.finished_at || "", r.message].forEach(v => tr.appendChild(el("td", {}, v)));
    return tr;
  }));
  document.getElementById("alerts").replaceChildren(...status.alerts.slice().reverse().map(a =>
    el("li", {}, `${a.created_at} ${a.reminder ? "(reminder) " : ""}${a.title}: ${a.message}`)));
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()} · ${status.identity}`;
  document.body.dataset.loaded = "true";
}

function readToken() {
  // With RECONCILER_READ_TOKEN set, open the page as /#token=<read token>; it is kept for this tab only.
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("readToken", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("readToken");
}

async function refresh() {
  try {
    const token = readToken();
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch("/api/status", { cache: "no-store", headers });
    if (response.status === 401) throw new Error("this daemon needs its read token: open this page as /#token=<read token>");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (err) {
    document.getElementById("updated").textContent = `refresh failed: ${err.message}`;
  }
}

refresh();
setInterval(refresh, 5000);
