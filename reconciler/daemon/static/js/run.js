// One run: what started it, its progress live (the run's event stream), and what it found: a sync's
// stacks, a plan's pending changes, a preview's added / changed / pruned objects per stack, policy
// delta and blast radius. Each changed object's diff is drawn when it is opened.

import { stream } from "./api.js";
import { badge, el, envRoute, link, short, stackRoute } from "./dom.js";
import { renderDiff } from "./diff.js";

let current = null;  // {id, controller}

function changeItem(c, sides) {
  const details = el("details", { class: "change", "data-change": c.id },
    el("summary", {}, badge(c.action === "create" ? "applied" : c.action === "prune" ? "failed" : "planned", c.action), ` ${c.id}`,
      c.fields && c.fields.length ? el("span", { class: "muted" }, ` · ${c.fields.map(f => f.path).slice(0, 4).join(", ")}${c.fields.length > 4 ? " …" : ""}`) : ""));
  details.addEventListener("toggle", () => {
    if (details.open && !details.dataset.drawn && c.diff) { details.appendChild(renderDiff(c.diff, sides)); details.dataset.drawn = "1"; }
  }, { once: false });
  return details;
}

function planReport(run, report) {
  const box = el("section", { class: "report", "data-report": "plan" });
  const stacks = report.stacks.filter(s => s.changes.length || s.violations.length || s.reason);
  box.appendChild(el("h3", {}, stacks.length ? "Pending changes: what the next pass applies" : "No pending changes: the cluster is as Git wants it"));
  stacks.forEach(s => box.appendChild(el("div", { class: "report-stack", "data-plan-stack": s.stack },
    el("h4", {}, link(stackRoute(run.env, s.stack), s.stack), " ", badge(s.state), s.reason ? el("span", { class: "muted" }, ` ${s.reason}`) : ""),
    s.violations.map(v => el("p", { class: "violation" }, `⚠ [${v.severity}] ${v.rule} ${v.object}: ${v.message} (fix: ${v.fix})`)),
    s.changes.map(c => changeItem(c, { left: "live", right: "Git" })))));
  return box;
}

function previewReport(run, report) {
  const box = el("section", { class: "report", "data-report": "preview" });
  const base = report.base ? `${short(report.base.sha)} (${report.base.message})` : "nothing";
  box.appendChild(el("h3", {}, `Preview of ${short(report.revision.sha)} “${report.revision.message}” against ${base}`));
  if (report.error) box.appendChild(el("p", { class: "error" }, report.error));
  const summary = el("table", { class: "preview-summary" }, el("thead", {}, el("tr", {},
    ["stack", "status", "added", "changed", "pruned", "new violations", "fixed", "waits on"].map(h => el("th", { scope: "col" }, h)))),
    el("tbody", {}, report.stacks.map(s => el("tr", { "data-preview-stack": s.stack, "data-status": s.status },
      el("td", {}, s.stack), el("td", {}, s.status), el("td", {}, String(s.added.length)), el("td", {}, String(s.changed.length)),
      el("td", {}, String(s.pruned.length)), el("td", {}, String(s.new_violations.length)), el("td", {}, String(s.fixed_violations.length)),
      el("td", {}, s.waits_on.join(", "))))));
  box.appendChild(summary);
  report.stacks.filter(s => s.status !== "unchanged" || s.new_violations.length).forEach(s => box.appendChild(el("div", { class: "report-stack" },
    el("h4", {}, `${s.stack}: ${s.status}`), s.error ? el("p", { class: "error" }, s.error) : "",
    s.new_violations.map(v => el("p", { class: "violation", "data-new-violation": v.rule }, `⚠ new: [${v.severity}] ${v.rule} ${v.object}: ${v.message} (fix: ${v.fix})`)),
    s.fixed_violations.map(v => el("p", { class: "muted" }, `✓ fixed: ${v.rule} ${v.object}`)),
    s.added.map(c => changeItem(c, {})), s.changed.map(c => changeItem(c, { left: "base", right: "branch" })),
    s.pruned.map(c => changeItem({ ...c, action: "prune" }, {})),
    s.kept.map(k => el("p", { class: "muted" }, `kept: ${k}`)), s.drift_overwritten.map(d => el("p", {}, `live edit reverted: ${d}`)))));
  return box;
}

// A failed stack that wrote nothing only planned its changes: "3 changed" beside "nothing applied" misled.
function changeCount(s) {
  const count = s.changes.filter(c => c.action !== "unchanged").length;
  return s.state === "failed" && !s.applied ? `${count} planned` : `${count} changed`;
}

function syncReport(run, result) {
  return el("section", { class: "report", "data-report": "sync" }, el("h3", {}, "Stacks"),
    el("ul", { class: "plain" }, result.stacks.map(s => el("li", { "data-result-stack": s.stack }, badge(s.state), " ",
      link(stackRoute(run.env, s.stack), s.stack), ` · ${changeCount(s)}`, s.reason ? ` · ${s.reason}` : ""))),
    result.notices.map(n => el("p", { class: "muted" }, `ℹ ${n}`)),
    result.error ? el("p", { class: "error" }, result.error) : "");
}

function header(run) {
  return el("div", { class: "run-head" },
    el("nav", { class: "crumbs", "aria-label": "breadcrumb" }, link("/", "All environments"), " › ", link(envRoute(run.env), run.env), " › ", `run ${run.id}`),
    el("h2", {}, run.options && run.options.revision ? `preview of ${run.options.revision} on ${run.env} `
      : `${run.action} of ${run.stack ? run.stack + " in " : ""}${run.env} `, el("span", { "data-run-state": run.state }, badge(run.state))),
    el("p", { class: "muted" }, `triggered by ${run.sources.join(", ")}`, run.commit ? ` · commit ${short(run.commit)}` : "",
      run.message ? ` · ${run.message}` : ""));
}

function drawDone(main, run) {
  const parts = [header(run)];
  if (run.report && run.action === "plan") parts.push(planReport(run, run.report));
  else if (run.report && run.action === "preview") parts.push(previewReport(run, run.report));
  else if (run.result) parts.push(syncReport(run, run.result));
  parts.push(progressList(run.progress));
  main.replaceChildren(...parts);
}

function progressList(items) {
  return el("details", { class: "progress-log" }, el("summary", {}, `Progress (${items.length} events)`),
    el("ol", { class: "plain", id: "run-progress" }, items.map(progressItem)));
}

function progressItem(p) {
  return el("li", {}, el("span", { class: "muted" }, (p.at || "").slice(11, 19)), ` ${p.stack ? p.stack + ": " : ""}${p.message || p.phase || ""}`);
}

export function renderRun(main, runId) {
  if (current && current.id === runId) return;  // the stream keeps this view current
  if (current) current.controller.abort();
  const controller = new AbortController();
  current = { id: runId, controller };
  const live = el("ol", { class: "plain", id: "run-progress", "aria-live": "polite" });
  const state = el("p", { "data-run-state": "queued" }, badge("queued"));
  main.dataset.view = "run";
  main.replaceChildren(el("h2", {}, `Run ${runId}`), state, el("h3", {}, "Progress"), live);
  stream(`/api/runs/${encodeURIComponent(runId)}/events`, (name, data) => {
    if (name === "progress") live.appendChild(progressItem(data));
    if (name === "state") { state.dataset.runState = data.state; state.replaceChildren(badge(data.state), data.message ? ` ${data.message}` : ""); }
    if (name === "done") drawDone(main, data);
  }, controller.signal).catch(err => {
    if (err.name !== "AbortError") main.appendChild(el("p", { class: "error" }, `run ${runId}: ${err.message}`));
  });
}

export function leaveRun() {
  if (current) { current.controller.abort(); current = null; }
}
