// The overview (every environment, recent runs, recent alerts) and one environment's page: its stack
// graph, facts, what blocks or holds it, its actions (sync, suspend, resume, pending changes, preview
// a branch), its history with rollback, and a table of its stacks.

import { act, planButton, read, suspendButtons, syncButton } from "./actions.js";
import { getJson } from "./api.js";
import { badge, el, envRoute, link, runRoute, short, stackRoute, timeEl } from "./dom.js";
import { drawGraph, STATES } from "./graph.js";

const histories = {};  // env -> the last /api/history answer
const openHistory = new Set();  // envs whose history is open (kept across redraws)

function fact(label, value) {
  return el("span", {}, `${label}: `, value);
}

function envFacts(env) {
  const last = env.last_run;
  return el("div", { class: "facts" },
    fact("branch", env.source.branch), fact("environment file", env.env_file || "–"),
    fact("commit", last && last.commit ? short(last.commit) : "–"),
    fact("last run", last ? el("span", {}, `${last.state} `, timeEl(last.finished_at)) : "–"),
    fact("next run", timeEl(env.next_run)),
    fact("drift", env.drift_count === null ? "not checked" : String(env.drift_count)),
    fact("leader", env.leader === null ? "n/a" : String(env.leader)),
    fact("running", env.running ? link(runRoute(env.running.id), env.running.id) : "no"),
    fact("queued", env.queued ? link(runRoute(env.queued.id), env.queued.id) : "no"));
}

function pinBanner(env) {
  if (!env.pins) return null;
  const pinned = Object.entries(env.pins.stacks).map(([s, p]) => `${s} at ${short(p.revision)} (by ${p.by})`);
  return el("p", { class: "pinned", "data-pinned": "true" }, `Pinned: ${pinned.join(", ")}. The branch head ` +
    `is not applied to these stacks until they are unpinned (reconciler unpin -e ${env.name}). `,
    el("button", { type: "button", "data-unpin": env.name,
      onclick: () => act("/api/unpin", { env: env.name }, `unpin of ${env.name}`) }, "Unpin"));
}

function problems(env) {
  const list = el("ul", { class: "plain problems" });
  env.stacks.forEach(s => {
    s.violations.forEach(v => list.appendChild(el("li", { "data-violation": `${s.name}/${v.rule}` },
      `⚠ ${s.name}: [${v.severity}] ${v.rule} ${v.object}: ${v.message}`)));
    if (s.reason && (s.state === "failed" || s.state === "blocked")) list.appendChild(el("li", {}, `✖ ${s.name}: ${s.reason}`));
    if (s.state === "suspended" || s.state === "held") list.appendChild(el("li", {}, `⏸ ${s.name}: ${s.reason}`));
  });
  (env.windows || []).forEach(w => list.appendChild(el("li", {}, `🕒 sync window ${w}`)));
  if (env.held_until) list.appendChild(el("li", {}, `🕒 held back until ${env.held_until}`));
  (env.notices || []).forEach(n => list.appendChild(el("li", { class: "muted" }, `ℹ ${n}`)));
  return list;
}

function envSuspended(env) {
  return env.stacks.some(s => s.state === "suspended" && (s.reason || "").startsWith("environment suspended"));
}

function envCard(env, full) {
  const box = el("div", { class: "env", "data-env": env.name });
  box.appendChild(el("h2", {}, full ? `Environment ${env.name}` : link(envRoute(env.name), `Environment ${env.name}`)));
  box.appendChild(envFacts(env));
  box.appendChild(el("div", { class: "actions" }, syncButton(env.name), suspendButtons(env.name, envSuspended(env)),
    planButton(env.name)));
  const banner = pinBanner(env);
  if (banner) box.appendChild(banner);
  box.appendChild(el("div", { class: "legend" }, STATES.map(k => badge(k))));
  box.appendChild(el("div", { class: "graph-wrap" }, drawGraph(env.name, env.stacks)));
  box.appendChild(problems(env));
  if (full) box.appendChild(stackTable(env));
  box.appendChild(historySection(env.name));
  return box;
}

function stackTable(env) {
  const table = el("table", { class: "stacks", "aria-label": `stacks of ${env.name}` },
    el("thead", {}, el("tr", {}, ["stack", "state", "objects", "drifted", "violations", "healthy", "commit", "last run", "why"]
      .map(h => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  env.stacks.forEach(s => body.appendChild(el("tr", { "data-stack-row": s.name },
    el("td", {}, link(stackRoute(env.name, s.name), s.name)), el("td", {}, badge(s.display_state)),
    el("td", {}, s.objects == null ? "–" : String(s.objects)), el("td", {}, String(s.drift_count)),
    el("td", {}, String(s.violations.length)), el("td", {}, s.healthy === null ? "–" : s.healthy ? "yes" : "no"),
    el("td", {}, el("code", {}, short(s.commit))), el("td", {}, timeEl(s.last_run)), el("td", {}, s.reason || ""))));
  table.appendChild(body);
  return table;
}

function previewForm(envName) {
  const input = el("input", { type: "text", name: "revision", placeholder: "branch, tag or commit", required: true,
    "aria-label": "branch to preview", "data-preview-input": envName });
  const form = el("form", { class: "preview-form", "data-preview-env": envName }, el("label", {}, "Preview a branch: ", input),
    el("button", { type: "submit" }, "Preview"));
  form.addEventListener("submit", event => {
    event.preventDefault();
    read("/api/preview", { env: envName, revision: input.value.trim() }, `preview of ${input.value.trim()} on ${envName}`);
  });
  return form;
}

function historySection(envName) {
  const details = el("details", { class: "history", "data-history-env": envName });
  details.open = openHistory.has(envName);
  details.appendChild(el("summary", {}, "History and rollback"));
  const body = el("div", { class: "history-body" });
  details.appendChild(body);
  details.addEventListener("toggle", () => {
    if (details.open) { openHistory.add(envName); loadHistory(envName); } else openHistory.delete(envName);
    // The toggle event comes a task after the click: a redraw in between put a new, closed section on
    // the page, made before the click counted. It follows the click too.
    const current = document.querySelector(`details[data-history-env="${CSS.escape(envName)}"]`);
    if (current && current !== details && current.open !== details.open) current.open = details.open;
  });
  fillHistory(body, envName);
  return details;
}

function fillHistory(body, envName) {
  const data = histories[envName];
  if (!data) { body.replaceChildren(el("p", { class: "muted" }, "loading…")); return; }
  body.replaceChildren(...data.stacks.map(s => stackHistory(envName, s)));
}

function rollback(envName, stack, to) {
  const what = `rollback of ${stack} in ${envName}` + (to ? ` to ${short(to)}` : " to its last healthy commit");
  return act("/api/rollback", { env: envName, stack, to }, what);
}

function stackHistory(envName, s) {
  const head = el("h3", {}, `${s.stack} `, s.pinned ? badge("blocked", `pinned at ${short(s.pinned.revision)}`) : null);
  const rows = s.history.map((h, index) => {
    const result = h.result + (h.pinned ? " (pinned)" : "") + (h.rolled_back_to ? `, rolled back to ${short(h.rolled_back_to)}` : "");
    const action = index > 0 && h.healthy !== false && h.result !== "failed"
      ? el("button", { type: "button", "data-rollback-to": h.commit, onclick: () => rollback(envName, s.stack, h.commit) }, "Roll back to this") : null;
    return el("tr", { "data-commit": h.commit }, el("td", {}, el("code", {}, short(h.commit))),
      el("td", {}, (h.author || "").split(" <")[0]), el("td", {}, h.message), el("td", {}, result),
      el("td", {}, h.healthy === true ? "yes" : h.healthy === false ? "no" : "–"), el("td", {}, timeEl(h.at)), el("td", {}, action));
  });
  return el("div", { class: "stack-history", "data-stack": s.stack }, head,
    el("button", { type: "button", "data-rollback-stack": s.stack, onclick: () => rollback(envName, s.stack, null) },
      "Roll back to the last healthy commit"),
    el("table", { class: "history-table" }, el("tr", {}, ["commit", "author", "message", "result", "healthy", "when", ""]
      .map(h => el("th", { scope: "col" }, h))), rows));
}

async function loadHistory(envName) {
  try {
    histories[envName] = await getJson(`/api/history?env=${encodeURIComponent(envName)}`);
  } catch (err) {
    histories[envName] = null;
    document.getElementById("action-result").textContent = `history of ${envName} failed: ${err.message}`;
  }
  const body = document.querySelector(`details[data-history-env="${CSS.escape(envName)}"] .history-body`);
  if (body) fillHistory(body, envName);
}

function runsTable(runs) {
  return el("table", { id: "runs" }, el("thead", {}, el("tr", {}, ["run", "env", "stack", "action", "trigger", "state", "commit", "finished", "message"]
    .map(h => el("th", { scope: "col" }, h)))), el("tbody", {}, runs.map(r => el("tr", {},
    el("td", {}, link(runRoute(r.id), r.id)), el("td", {}, r.env), el("td", {}, r.stack || "all"), el("td", {}, r.action),
    el("td", {}, r.sources.join(", ")), el("td", {}, badge(r.state)), el("td", {}, short(r.commit)),
    el("td", {}, timeEl(r.finished_at)), el("td", {}, r.message)))));
}

function alertsList(alerts) {
  return el("ul", { id: "alerts", class: "plain" }, alerts.slice().reverse().map(a =>
    el("li", { "data-alert": a.kind }, timeEl(a.created_at), ` ${a.reminder ? "(reminder) " : ""}${a.title}: ${a.message}`)));
}

export function renderOverview(main, status) {
  main.dataset.view = "overview";
  main.replaceChildren(el("section", { id: "envs" }, status.envs.map(env => envCard(env, false))),
    el("section", {}, el("h2", {}, "Recent runs"), runsTable(status.runs)),
    el("section", {}, el("h2", {}, "Recent alerts"), alertsList(status.alerts)));
  openHistory.forEach(loadHistory);
}

export function renderEnv(main, status, envName) {
  const env = status.envs.find(e => e.name === envName);
  if (!env) { main.replaceChildren(el("p", { class: "error" }, `No environment ${envName} on this daemon.`)); return; }
  const top = el("div", {}, el("nav", { class: "crumbs", "aria-label": "breadcrumb" }, link("/", "All environments"), " › ", env.name),
    envCard(env, true));
  const bottom = el("section", {}, el("h2", {}, "Recent runs"), runsTable(status.runs.filter(r => r.env === envName)));
  const key = `env:${envName}`;
  if (main.dataset.view === key && main.children.length === 3) {  // keep the preview form (what is typed, focus)
    main.children[0].replaceWith(top);
    main.children[2].replaceWith(bottom);
  } else {
    main.replaceChildren(top, previewForm(envName), bottom);
    main.dataset.view = key;
  }
  openHistory.forEach(loadHistory);
}
