// An environment's stacks as a graph of coloured boxes, waves left to right; a box opens its stack.

import { svgEl, stackRoute } from "./dom.js";

export const STATES = ["applied", "unchanged", "drifted", "blocked", "failed", "pending", "planned", "suspended", "held"];
const BOX_W = 170, BOX_H = 58, GAP_X = 50, GAP_Y = 18, PAD = 10;

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

function layout(stacks) {
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
  return { pos, width: PAD * 2 + ncols * BOX_W + (ncols - 1) * GAP_X, height: PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y };
}

export function drawGraph(env, stacks) {
  const { pos, width, height } = layout(stacks);
  const svg = svgEl("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "group",
    "aria-label": `stacks of ${env} in dependency order` });
  const defs = svgEl("defs");
  const marker = svgEl("marker", { id: "arrow", markerWidth: 8, markerHeight: 8, refX: 7, refY: 4, orient: "auto" });
  marker.appendChild(svgEl("path", { d: "M0,0 L8,4 L0,8 z", class: "edge-head" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  stacks.forEach(s => (s.depends_on || []).forEach(d => {
    if (!pos[d]) return;
    svg.appendChild(svgEl("line", { x1: pos[d].x + BOX_W, y1: pos[d].y + BOX_H / 2, x2: pos[s.name].x - 2,
      y2: pos[s.name].y + BOX_H / 2, class: "edge", "marker-end": "url(#arrow)" }));
  }));
  stacks.forEach(s => svg.appendChild(stackBox(env, s, pos[s.name])));
  return svg;
}

function stackBox(env, s, p) {
  const state = s.display_state || "pending";
  const anchor = svgEl("a", { href: "#" + stackRoute(env, s.name), "aria-label": `stack ${s.name}: ${state}` });
  const g = svgEl("g", { class: "stack", "data-stack": s.name, "data-state": state });
  g.appendChild(svgEl("rect", { x: p.x, y: p.y, width: BOX_W, height: BOX_H, rx: 6, class: `box state-${state}` }));
  g.appendChild(svgEl("text", { x: p.x + 10, y: p.y + 22 }, s.name));
  const extra = [state, s.objects != null ? `${s.objects} obj` : "", s.drift_count ? `${s.drift_count} drifted` : "",
    s.violations.length ? `${s.violations.length} violations` : ""].filter(Boolean).join(" · ");
  g.appendChild(svgEl("text", { x: p.x + 10, y: p.y + 42, class: "sub" }, extra));
  g.appendChild(svgEl("title", {}, `${s.name}: ${state}${s.reason ? " — " + s.reason : ""}`));
  anchor.appendChild(g);
  return anchor;
}
