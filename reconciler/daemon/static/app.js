// Status page: fetches /api/status every 5 s and draws each environment's stack graph as SVG; each
// environment's history (GET /api/history) opens below it, with rollback buttons (POST /api/rollback).
"use strict";

const histories = {};  // env -> the last /api/history answer
const openHistory = new Set();  // envs whose history is open (kept across the 5 s redraws)

const COLORS = { applied: "#2e7d32", unchanged: "#558b2f", drifted: "#ef6c00", blocked: "#6a1b9a",
                 failed: "#c62828", pending: "#757575", planned: "#1565c0", suspended: "#795548", held: "#795548" };
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

// Times read as people read them ("3 min ago"); the exact time is on hover.
function ago(iso) {
  if (!iso) return "–";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const abs = Math.abs(seconds);
  const [n, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return seconds >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

function timeEl(iso) {
  if (!iso) return el("span", {}, "–");
  const exact = new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  return el("time", { datetime: iso, title: exact }, ago(iso));
}

function fact(label, value) {
  const span = el("span", {}, `${label}: `);
  span.appendChild(typeof value === "string" ? document.createTextNode(value) : value);
  return span;
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
  const lastRun = el("span", {}, last ? `${last.state} ` : "–");
  if (last) lastRun.appendChild(timeEl(last.finished_at));
  [["branch", env.source.branch], ["environment file", env.env_file || "–"], ["commit", last && last.commit ? last.commit.slice(0, 10) : "–"],
   ["last run", lastRun], ["next run", timeEl(env.next_run)],
   ["drift", env.drift_count === null ? "not checked" : String(env.drift_count)],
   ["leader", env.leader === null ? "n/a" : String(env.leader)],
   ["running", env.running ? env.running.id : "no"], ["queued", env.queued ? env.queued.id : "no"]]
    .forEach(([k, v]) => facts.appendChild(fact(k, v)));
  box.appendChild(facts);
  if (env.pins) {
    const pinned = Object.entries(env.pins.stacks).map(([s, p]) => `${s} at ${p.revision.slice(0, 10)} (by ${p.by})`);
    const banner = el("p", { class: "pinned", "data-pinned": "true" }, `Pinned: ${pinned.join(", ")}. The branch head ` +
      `is not applied to these stacks until they are unpinned (reconciler unpin -e ${env.name}). `);
    const unpin = el("button", { type: "button", "data-unpin": env.name }, "Unpin");
    unpin.addEventListener("click", () => post("/api/unpin", { env: env.name }, `unpin of ${env.name}`));
    banner.appendChild(unpin);
    box.appendChild(banner);
  }
  const legend = el("div", { class: "legend" });
  Object.keys(COLORS).forEach(k => legend.appendChild(el("span", { class: `badge state-${k}` }, k)));
  box.appendChild(legend);
  box.appendChild(drawGraph(env.stacks));
  const problems = el("ul", { class: "plain" });
  env.stacks.forEach(s => {
    s.violations.forEach(v => problems.appendChild(el("li", {}, `⚠ ${s.name}: [${v.severity}] ${v.rule} ${v.object}: ${v.message}`)));
    if (s.reason && (s.state === "failed" || s.state === "blocked")) problems.appendChild(el("li", {}, `✖ ${s.name}: ${s.reason}`));
    if (s.state === "suspended" || s.state === "held") problems.appendChild(el("li", {}, `⏸ ${s.name}: ${s.reason}`));
  });
  (env.windows || []).forEach(w => problems.appendChild(el("li", {}, `🕒 sync window ${w}`)));
  if (env.held_until) problems.appendChild(el("li", {}, `🕒 held back until ${env.held_until}`));
  box.appendChild(problems);
  box.appendChild(historySection(env.name));
  return box;
}

function historySection(envName) {
  const details = el("details", { class: "history", "data-history-env": envName });
  details.open = openHistory.has(envName);
  details.appendChild(el("summary", {}, "History and rollback"));
  const body = el("div", { class: "history-body" });
  details.appendChild(body);
  details.addEventListener("toggle", () => {
    if (details.open) { openHistory.add(envName); loadHistory(envName); } else openHistory.delete(envName);
  });
  fillHistory(body, envName);
  return details;
}

function fillHistory(body, envName) {
  const data = histories[envName];
  if (!data) { body.replaceChildren(el("p", { class: "muted" }, "loading…")); return; }
  body.replaceChildren(...data.stacks.map(s => stackHistory(envName, s)));
}

function stackHistory(envName, s) {
  const box = el("div", { class: "stack-history", "data-stack": s.stack });
  const head = el("h3", {}, `${s.stack} `);
  if (s.pinned) head.appendChild(el("span", { class: "badge state-blocked" }, `pinned at ${s.pinned.revision.slice(0, 10)}`));
  box.appendChild(head);
  const button = el("button", { type: "button", "data-rollback-stack": s.stack }, "Roll back to the last healthy commit");
  button.addEventListener("click", () => rollback(envName, s.stack, null));
  box.appendChild(button);
  const table = el("table", { class: "history-table" });
  const header = el("tr");
  ["commit", "author", "message", "result", "healthy", "when", ""].forEach(h => header.appendChild(el("th", {}, h)));
  table.appendChild(header);
  s.history.forEach((h, index) => {
    const tr = el("tr", { "data-commit": h.commit });
    const result = h.result + (h.pinned ? " (pinned)" : "") + (h.rolled_back_to ? `, rolled back to ${h.rolled_back_to.slice(0, 10)}` : "");
    [el("code", {}, h.commit.slice(0, 10)), (h.author || "").split(" <")[0], h.message, result,
     h.healthy === true ? "yes" : h.healthy === false ? "no" : "–", timeEl(h.at)].forEach(v => {
      const td = el("td");
      td.appendChild(typeof v === "string" ? document.createTextNode(v) : v);
      tr.appendChild(td);
    });
    const action = el("td");
    if (index > 0 && h.healthy !== false && h.result !== "failed") {
      const to = el("button", { type: "button", "data-rollback-to": h.commit }, "Roll back to this");
      to.addEventListener("click", () => rollback(envName, s.stack, h.commit));
      action.appendChild(to);
    }
    tr.appendChild(action);
    table.appendChild(tr);
  });
  box.appendChild(table);
  return box;
}

function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function loadHistory(envName) {
  try {
    const response = await fetch(`/api/history?env=${encodeURIComponent(envName)}`,
                                 { cache: "no-store", headers: authHeaders(readToken()) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    histories[envName] = await response.json();
  } catch (err) {
    histories[envName] = null;
    document.getElementById("action-result").textContent = `history of ${envName} failed: ${err.message}`;
  }
  const body = document.querySelector(`details[data-history-env="${CSS.escape(envName)}"] .history-body`);
  if (body) fillHistory(body, envName);
}

async function rollback(envName, stack, to) {
  const what = `rollback of ${stack} in ${envName}` + (to ? ` to ${to.slice(0, 10)}` : " to its last healthy commit");
  await post("/api/rollback", { env: envName, stack, to }, what);
}

// POST an action (rollback, unpin) with the API token, asked for each time (never stored).
async function post(path, body, what) {
  const token = window.prompt(`API token for the ${what}:`);
  const out = document.getElementById("action-result");
  if (!token) { out.textContent = `${what} cancelled`; return; }
  const response = await fetch(path, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...authHeaders(token) } });
  const answer = await response.json().catch(() => ({}));
  out.textContent = response.ok ? `${what} queued as run ${answer.run_id}`
    : `${what} refused (HTTP ${response.status}): ${typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail)}`;
  out.dataset.state = response.ok ? "queued" : "refused";
  refresh();
}

function render(status) {
  const envs = document.getElementById("envs");
  envs.replaceChildren(...status.envs.map(envSection));
  const tbody = document.querySelector("#runs tbody");
  tbody.replaceChildren(...status.runs.map(r => {
    const tr = el("tr");
    [r.id, r.env, r.stack || "all", r.sources.join(", ")].forEach(v => tr.appendChild(el("td", {}, v)));
    const td = el("td"); td.appendChild(el("span", { class: `badge state-${r.state}` }, r.state)); tr.appendChild(td);
    tr.appendChild(el("td", {}, r.commit ? r.commit.slice(0, 10) : ""));
    const finished = el("td"); finished.appendChild(timeEl(r.finished_at)); tr.appendChild(finished);
    tr.appendChild(el("td", {}, r.message));
    return tr;
  }));
  document.getElementById("alerts").replaceChildren(...status.alerts.slice().reverse().map(a => {
    const li = el("li", { "data-alert": a.kind });
    li.appendChild(timeEl(a.created_at));
    li.appendChild(document.createTextNode(` ${a.reminder ? "(reminder) " : ""}${a.title}: ${a.message}`));
    return li;
  }));
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
    const response = await fetch("/api/status", { cache: "no-store", headers: authHeaders(token) });
    if (response.status === 401) throw new Error("this daemon needs its read token: open this page as /#token=<read token>");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    openHistory.forEach(loadHistory);
  } catch (err) {
    document.getElementById("updated").textContent = `refresh failed: ${err.message}`;
  }
}

refresh();
setInterval(refresh, 5000);
