// The status page: a router over hash URLs (every view linkable), one status read per change the
// daemon announces on its event stream (no polling), light and dark themes, and keyboard shortcuts.
//
//   #/                              every environment, recent runs, recent alerts
//   #/env/<env>                     one environment: stacks, actions, preview a branch, history
//   #/env/<env>/stack/<stack>?...   one stack's objects (show=, q=, group=, object=)
//   #/run/<id>                      one run, live; a plan's or a preview's report

import { followChanges, getJson, readToken } from "./api.js";
import { renderEnv, renderOverview } from "./overview.js";
import { leaveRun, renderRun } from "./run.js";
import { focusSearch, renderStack } from "./stack.js";

let status = null;
let drawing = false, again = false;

// A redraw waits while a pointer is pressed on the page: it replaces the buttons, and a press and a release
// that land on two nodes (a button and the button that replaced it) make no click, so the action was lost.
// A release the page never hears (the window lost, which `blur` also ends) holds a redraw back for at most
// PRESS_LIMIT_MS: long enough for any press a click is made of (at 2 s, a press held while the machine was
// busy outlasted it, and the redraw after it lost the click), short enough that a stuck press shows news.
const PRESS_LIMIT_MS = 10000;
let pressed = false, drawHeld = false, pressTimer = null;

function press() {
  pressed = true;
  clearTimeout(pressTimer);
  pressTimer = setTimeout(release, PRESS_LIMIT_MS);
}

function release() {
  pressed = false;
  clearTimeout(pressTimer);
  if (drawHeld) {
    drawHeld = false;
    setTimeout(refresh, 0);  // after the click this release ends; through refresh, one draw at a time
  }
}

function route() {
  const [path] = (location.hash.replace(/^#/, "") || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "env" && parts[2] === "stack" && parts[3]) return { view: "stack", env: parts[1], stack: parts[3] };
  if (parts[0] === "env" && parts[1]) return { view: "env", env: parts[1] };
  if (parts[0] === "run" && parts[1]) return { view: "run", id: parts[1] };
  return { view: "overview" };
}

async function draw(refreshing) {
  const main = document.getElementById("main");
  const where = route();
  if (where.view !== "run") leaveRun();
  if (where.view === "run") { renderRun(main, where.id); return; }
  if (!status) return;
  if (where.view === "stack") await renderStack(main, status, where.env, where.stack, refreshing);
  else if (where.view === "env") renderEnv(main, status, where.env);
  else renderOverview(main, status);
}

async function refresh() {
  if (drawing) { again = true; return; }
  drawing = true;
  try {
    readToken();
    status = await getJson("/api/status");
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()} · ${status.identity}`;
    performance.mark("status-read");
    if (pressed) drawHeld = true;
    else await draw(true);
    document.body.dataset.loaded = "true";
    performance.mark("status-rendered");
  } catch (err) {
    document.getElementById("updated").textContent = `refresh failed: ${err.message}`;
  } finally {
    drawing = false;
    if (again) { again = false; setTimeout(refresh, 100); }
  }
}

function theme(next) {
  const chosen = next || localStorage.getItem("theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = chosen;
  if (next) localStorage.setItem("theme", next);
  const button = document.getElementById("theme");
  button.textContent = chosen === "dark" ? "Light theme" : "Dark theme";
  button.setAttribute("aria-pressed", String(chosen === "dark"));
}

let pending = null;
function changed() {  // the daemon said something moved on: read the status once, a moment later
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 250);
}

document.getElementById("theme").addEventListener("click", () =>
  theme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
document.addEventListener("keydown", event => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing && focusSearch()) event.preventDefault();
  if (event.key === "Escape" && typing) document.activeElement.blur();
});
window.addEventListener("hashchange", () => draw(false).catch(shown));
document.addEventListener("pointerdown", press, true);
document.addEventListener("pointerup", release, true);
document.addEventListener("pointercancel", release, true);
window.addEventListener("blur", release);

function shown(err) {  // a view that fails says so on the page, not only in the console
  console.error(err);
  document.getElementById("main").prepend(Object.assign(document.createElement("p"),
    { className: "error", textContent: `this view failed: ${err.message}` }));
}
theme();
readToken();
refresh();
followChanges(changed, err => { document.getElementById("updated").textContent = `live updates lost (${err.message}); reconnecting…`; });
