// Actions people take from the page (sync, suspend, resume, roll back, unpin, plan, preview): each
// says what it started in the status line (#action-result), links the run, and follows its progress
// live over the run's event stream until it is done.

import { postAction, postRead, stream } from "./api.js";
import { el, link, runRoute } from "./dom.js";

let following = null;  // the AbortController of the run the status line follows

function statusLine() {
  return document.getElementById("action-result");
}

export function say(text, state, runId = null) {
  const out = statusLine();
  out.replaceChildren(text);
  if (runId) out.append(" · ", link(runRoute(runId), "open the run", { "data-run-link": runId }));
  out.dataset.state = state;
}

// Follow one run's events; `onDone(run)` with the finished record.
export function follow(runId, what, onDone = () => {}) {
  if (following) following.abort();
  const controller = following = new AbortController();
  let last = "";
  stream(`/api/runs/${encodeURIComponent(runId)}/events`, (name, data) => {
    if (name === "progress") {
      last = data.message || `${data.stack || ""} ${data.phase || ""}`.trim();
      if (statusLine().dataset.state === "running") say(`${what}: running · ${last}`, "running", runId);
    }
    if (name === "state" && data.state === "running") say(`${what}: running${last ? " · " + last : ""}`, "running", runId);
    if (name === "done") {
      say(`${what}: ${data.state}${data.message ? " · " + data.message : ""}`, data.state === "succeeded" ? "done" : "failed", runId);
      onDone(data);
    }
  }, controller.signal).catch(err => {
    if (err.name !== "AbortError") say(`${what}: lost the run's progress stream (${err.message})`, "failed", runId);
  });
}

// POST an action with the API token; says plainly when the token is refused.
export async function act(path, body, what, onDone) {
  const { ok, answer, status, cancelled } = await postAction(path, body, what);
  if (cancelled) { say(`${what} cancelled: no token given`, "cancelled"); return null; }
  if (!ok) {
    const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
    const refused = status === 401 ? "the API token was refused; it is forgotten, the next action asks again"
      : status === 403 ? "actions are disabled on this daemon (no RECONCILER_API_TOKEN)" : detail;
    say(`${what} refused (HTTP ${status}): ${refused}`, "refused");
    return null;
  }
  say(`${what} queued as run ${answer.run_id}`, "queued", answer.run_id);
  follow(answer.run_id, what, onDone);
  return answer;
}

// Queue a read (plan, preview) and open its run's view, where the report appears when it is ready.
export async function read(path, body, what) {
  try {
    const answer = await postRead(path, body);
    say(`${what} queued as run ${answer.run_id}`, "queued", answer.run_id);
    location.hash = runRoute(answer.run_id);
  } catch (err) {
    say(`${what} refused (HTTP ${err.status}): ${err.message}`, "refused");
  }
}

export function syncButton(env, stack = null) {
  const what = stack ? `sync of ${stack} in ${env}` : `sync of ${env}`;
  return el("button", { type: "button", "data-sync": stack ? `${env}/${stack}` : env,
    onclick: () => act("/api/sync", { env, stack }, what) }, stack ? "Sync stack" : "Sync now");
}

export function suspendButtons(env, suspended, stack = null) {
  const target = stack ? `${stack} in ${env}` : env;
  if (suspended) {
    return el("button", { type: "button", "data-resume": stack ? `${env}/${stack}` : env,
      onclick: () => act("/api/resume", { env, stack }, `resume of ${target}`) }, "Resume");
  }
  return el("button", { type: "button", "data-suspend": stack ? `${env}/${stack}` : env, onclick: () => {
    const reason = window.prompt(`Why suspend ${target}? (shown wherever its status is)`);
    if (!reason) { say(`suspend of ${target} cancelled: no reason given`, "cancelled"); return; }
    act("/api/suspend", { env, stack, reason, by: "status page" }, `suspend of ${target}`);
  } }, "Suspend");
}

export function planButton(env, stack = null) {
  return el("button", { type: "button", "data-plan": stack ? `${env}/${stack}` : env,
    onclick: () => read("/api/plan", { env, stack }, `plan of ${stack || env}`) }, "Pending changes");
}
