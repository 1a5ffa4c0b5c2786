// One stack: why it is in its state (reason, blocking stacks, policy violations with their fixes),
// every object it owns (health and why, drift, applied commit, violations), filtered by state,
// searched by name, grouped by kind, namespace or owner, drawn as a virtual list; and one object's
// detail with its drift diff. Filter, search, grouping and the open object are in the URL.

import { planButton, suspendButtons, syncButton } from "./actions.js";
import { getJson } from "./api.js";
import { badge, el, envRoute, link, short, stackRoute, timeEl } from "./dom.js";
import { renderDiff } from "./diff.js";
import { VirtualList } from "./vlist.js";

const FILTERS = ["all", "unhealthy", "drifted", "violations", "healthy", "progressing", "degraded", "missing", "not applied"];
const GROUPS = { none: null, kind: r => r.kind, namespace: r => r.namespace || "(cluster-scoped)", owner: r => r.owner || "(no owner)" };
const FIRST_PAGE = 200, PAGE = 5000, ROW_H = 30;

let view = null;  // the open stack view: {env, stack, rows, list, ...}; kept across redraws of the same stack

function shown(row, filter) {
  if (filter === "all") return true;
  if (filter === "unhealthy") return ["progressing", "degraded", "missing"].includes(row.health);
  if (filter === "drifted") return Boolean(row.drift);
  if (filter === "violations") return row.violations.length > 0;
  return row.health === filter;
}

function countAll(rows) {
  return Object.fromEntries(FILTERS.map(f => [f, rows.reduce((n, r) => n + (shown(r, f) ? 1 : 0), 0)]));
}

function objectRow(item) {
  if (item.group) {
    return el("div", { class: "vrow group-row", role: "row" }, el("span", { role: "gridcell" }, `${item.label} (${item.count})`));
  }
  const r = item.row;
  const healthCell = el("span", { role: "gridcell", class: "cell-health" }, badge(r.health), r.health_reason ? ` ${r.health_reason}` : "");
  return el("div", { class: "vrow", role: "row", "data-object-id": r.id, "data-health": r.health, "data-drift": r.drift || "none" },
    el("span", { role: "gridcell", class: "cell-kind" }, r.kind),
    el("span", { role: "gridcell", class: "cell-ns" }, r.namespace || "–"),
    el("span", { role: "gridcell", class: "cell-name", title: r.name }, r.name),
    healthCell,
    el("span", { role: "gridcell" }, r.drift ? badge("drifted", `${r.drift} (${r.drift_fields})`) : ""),
    el("span", { role: "gridcell" }, r.violations.length ? badge("blocked", `${r.violations.length} ⚠`) : ""),
    el("span", { role: "gridcell" }, el("code", {}, short(r.commit))));
}

function listItems(rows, filter, search, group) {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  const matched = rows.filter(r => shown(r, filter) && words.every(w => r._hay.includes(w)));
  const key = GROUPS[group];
  if (!key) return { matched, items: matched.map(r => ({ key: r.id, row: r, openable: true })) };
  const groups = new Map();
  matched.forEach(r => { const k = key(r); if (!groups.has(k)) groups.set(k, []); groups.get(k).push(r); });
  const items = [];
  [...groups.keys()].sort().forEach(k => {
    items.push({ key: `group:${k}`, group: true, label: k, count: groups.get(k).length });
    groups.get(k).forEach(r => items.push({ key: r.id, row: r, openable: true }));
  });
  return { matched, items };
}

function params() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query);
}

function setParams(changes) {
  const p = params();
  Object.entries(changes).forEach(([k, v]) => (v && v !== "all" && v !== "none" ? p.set(k, v) : p.delete(k)));
  history.replaceState(null, "", "#" + stackRoute(view.env, view.stack, Object.fromEntries(p)));
}

function whyBlock(env, s) {
  const box = el("section", { class: "why", "data-why": s.name });
  const facts = el("div", { class: "facts" }, el("span", {}, "state: ", badge(s.display_state)),
    el("span", {}, "commit: ", el("code", {}, short(s.commit))), el("span", {}, "last run: ", timeEl(s.last_run)),
    el("span", {}, `healthy: ${s.healthy === null ? "–" : s.healthy ? "yes" : "no"}`),
    s.depends_on.length ? el("span", {}, "depends on: ", s.depends_on.map((d, i) => [i ? ", " : "", link(stackRoute(env, d), d)])) : null);
  box.appendChild(facts);
  if (s.reason) box.appendChild(el("p", { class: `reason state-text-${s.state}`, "data-reason": "true" }, s.reason));
  if (s.blocked_by.length) box.appendChild(el("p", {}, "blocked by: ", s.blocked_by.map((b, i) => [i ? ", " : "", link(stackRoute(env, b), b)])));
  if (s.violations.length) {
    const table = el("table", { class: "violations", "aria-label": "policy violations" },
      el("thead", {}, el("tr", {}, ["rule", "severity", "mode", "object", "message", "fix"].map(h => el("th", { scope: "col" }, h)))),
      el("tbody", {}, s.violations.map(v => el("tr", { "data-violation-rule": v.rule },
        el("td", {}, v.rule), el("td", {}, v.severity), el("td", {}, v.excepted_by ? `excepted (${v.excepted_by})` : v.mode),
        el("td", {}, link(stackRoute(env, s.name, { object: v.object }), v.object)), el("td", {}, v.message), el("td", {}, v.fix)))));
    box.appendChild(el("h3", {}, `Policy violations (${s.violations.length})`));
    box.appendChild(table);
  }
  return box;
}

function filterBar(counts) {
  const p = params();
  const bar = el("div", { class: "filters", role: "toolbar", "aria-label": "show objects" });
  FILTERS.forEach(f => bar.appendChild(el("button", { type: "button", "data-filter": f,
    "aria-pressed": String((p.get("show") || "all") === f), onclick: () => { setParams({ show: f }); redrawList(); } },
    `${f} (${counts[f] ?? 0})`)));
  return bar;
}

function redrawList() {
  if (!view) return;
  const p = params();
  const { matched, items } = listItems(view.rows, p.get("show") || "all", p.get("q") || "", p.get("group") || "none");
  view.list.setItems(items, p.get("object"));
  view.shownEl.textContent = `${matched.length} of ${view.total} objects${view.rows.length < view.total ? ` (${view.rows.length} loaded)` : ""}`;
  view.listBox.dataset.shown = String(matched.length);
  view.listBox.dataset.loaded = String(view.rows.length);
  view.filtersEl.replaceWith(view.filtersEl = filterBar(view.rows.length >= view.total ? countAll(view.rows) : view.counts));
}

function controls() {
  const p = params();
  const search = el("input", { type: "search", id: "object-search", placeholder: "search kind, namespace, name  ( / )",
    value: p.get("q") || "", "aria-label": "search objects by name", autocomplete: "off" });
  search.addEventListener("input", () => { setParams({ q: search.value }); redrawList(); });
  const group = el("select", { id: "object-group", "aria-label": "group objects by" },
    Object.keys(GROUPS).map(g => el("option", { value: g, selected: (p.get("group") || "none") === g }, `group: ${g}`)));
  group.addEventListener("change", () => { setParams({ group: group.value }); redrawList(); });
  return el("div", { class: "controls" }, search, group);
}

async function openObject(id) {
  setParams({ object: id });
  const aside = document.getElementById("object-detail");
  if (!aside) return;
  aside.replaceChildren(el("p", { class: "muted" }, "loading…"));
  try {
    const d = await getJson(`/api/object?env=${encodeURIComponent(view.env)}&stack=${encodeURIComponent(view.stack)}&id=${encodeURIComponent(id)}`);
    aside.replaceChildren(objectDetail(d));
  } catch (err) {
    aside.replaceChildren(el("p", { class: "error" }, `object ${id}: ${err.message}`));
  }
}

function objectDetail(d) {
  const o = d.object;
  const box = el("div", { "data-detail": o.id },
    el("h3", {}, `${o.kind} ${o.namespace ? o.namespace + "/" : ""}${o.name}`),
    el("button", { type: "button", class: "close", "aria-label": "close the object", onclick: () => { setParams({ object: "" }); document.getElementById("object-detail").replaceChildren(); } }, "×"),
    el("dl", {}, el("dt", {}, "health"), el("dd", {}, badge(o.health), o.health_reason ? ` ${o.health_reason}` : ""),
      el("dt", {}, "applied from"), el("dd", {}, el("code", {}, short(o.commit))),
      el("dt", {}, "file"), el("dd", {}, o.file || "–"), el("dt", {}, "owner"), el("dd", {}, o.owner || "–"),
      el("dt", {}, "drift"), el("dd", {}, d.drift ? `${d.drift}, first seen ` : "none", d.drift ? timeEl(d.first_seen) : "",
        d.checked_at ? el("span", { class: "muted" }, " · checked ", timeEl(d.checked_at)) : "")));
  o.violations.forEach(v => box.appendChild(el("p", { class: "violation", "data-object-violation": v.rule },
    `⚠ [${v.severity}${v.blocking ? ", blocks the stack" : ""}] ${v.rule}: ${v.message}`, el("br"), `fix: ${v.fix}`)));
  if (d.drift === "modified") box.appendChild(renderDiff(d.diff, { left: "Git (desired)", right: "live" }));
  else if (d.drift === "missing") box.appendChild(el("p", {}, "Git wants this object; it is not in the cluster."));
  return box;
}

function objectsPath(env, stack) {
  return `/api/objects?env=${encodeURIComponent(env)}&stack=${encodeURIComponent(stack)}`;
}

function searchable(items) {
  items.forEach(r => { r._hay = `${r.kind}/${r.namespace}/${r.name} ${r.owner}`.toLowerCase(); });
  return items;
}

// The pages of a stack's objects from `offset` on (up to the total each page reports), each handed to
// `onPage(items)` as it comes; stops early when `keepGoing()` says the view has moved on.
async function restOfRows(env, stack, offset, total, onPage, keepGoing = () => true) {
  for (; offset < total && keepGoing(); offset += PAGE) {
    const page = await getJson(`${objectsPath(env, stack)}&offset=${offset}&limit=${PAGE}`);
    total = page.total;
    if (!page.items.length) return;
    onPage(searchable(page.items));
  }
}

async function loadRows(env, stack) {
  const first = await getJson(`${objectsPath(env, stack)}&limit=${FIRST_PAGE}`);
  view.rows = searchable(first.items);
  view.total = first.total;
  view.counts = first.counts;
  view.meta = first;
  return () => restOfRows(env, stack, view.rows.length, first.total, items => { view.rows.push(...items); redrawList(); },
    () => view && view.stack === stack);
}

export async function renderStack(main, status, envName, stackName, refreshing) {
  const env = status.envs.find(e => e.name === envName);
  const s = env && env.stacks.find(x => x.name === stackName);
  if (!s) { main.replaceChildren(el("p", { class: "error" }, `No stack ${stackName} in ${envName}.`)); return; }
  const same = view && view.env === envName && view.stack === stackName && document.contains(view.listBox);
  const version = `${s.last_run}|${env.drift_checked_at}|${env.drift_count}`;
  if (refreshing && same) {  // keep the search box, filter, scroll and open object; only the data moves on
    view.whyEl.replaceWith(view.whyEl = whyBlock(envName, s));
    if (view.version !== version) { view.version = version; reload(envName, stackName); }
    return;
  }
  const suspended = s.state === "suspended" && (s.reason || "").startsWith("stack suspended");
  view = { env: envName, stack: stackName, rows: [], total: 0, version };
  view.list = new VirtualList({ rowHeight: ROW_H, renderRow: objectRow, onOpen: item => openObject(item.row.id), label: `objects of ${stackName}` });
  view.whyEl = whyBlock(envName, s);
  view.filtersEl = el("div");
  view.shownEl = el("span", { class: "muted", id: "objects-shown" }, "loading objects…");
  view.listBox = el("div", { class: "objects", "data-objects": stackName },
    el("div", { class: "vrow vhead", role: "row" }, ["kind", "namespace", "name", "health", "drift", "policy", "commit"]
      .map(h => el("span", { role: "columnheader" }, h))), view.list.root);
  main.dataset.view = "stack";
  main.replaceChildren(
    el("nav", { class: "crumbs", "aria-label": "breadcrumb" }, link("/", "All environments"), " › ", link(envRoute(envName), envName), " › ", stackName),
    el("h2", {}, `Stack ${stackName}`),
    el("div", { class: "actions" }, syncButton(envName, stackName), suspendButtons(envName, suspended, stackName), planButton(envName, stackName)),
    view.whyEl, el("h3", {}, "Objects"), view.filtersEl, controls(), view.shownEl,
    el("div", { class: "stack-body" }, view.listBox, el("aside", { id: "object-detail", "aria-live": "polite" })));
  try {
    const rest = await loadRows(envName, stackName);
    redrawList();
    performance.mark("stack-rendered");
    const open = params().get("object");
    if (open) openObject(open);
    await rest();
    view.listBox.dataset.complete = "true";
  } catch (err) {
    view.shownEl.textContent = `objects of ${stackName}: ${err.message}`;
  }
}

// The stack's objects read again (a pass or a drift check changed them), drawn in place once all are in.
async function reload(envName, stackName) {
  const mine = view;
  try {
    const rows = [];
    await restOfRows(envName, stackName, 0, Infinity, items => rows.push(...items), () => view === mine);
    if (view !== mine) return;
    Object.assign(view, { rows, total: rows.length });
    const top = view.list.root.scrollTop;
    redrawList();
    view.list.root.scrollTop = top;
  } catch (err) {
    if (view === mine) view.shownEl.textContent = `objects of ${stackName}: ${err.message}`;
  }
}

export function focusSearch() {
  const search = document.getElementById("object-search");
  if (search) { search.focus(); return true; }
  return false;
}
