// The daemon's API as the page uses it: reads (with the read token when the daemon has one), actions
// (with the API token, asked for once per tab), and server-sent event streams read over fetch (so they
// carry the token too, which EventSource cannot).

export function readToken() {
  // With RECONCILER_READ_TOKEN set, open the page as /#token=<read token>; it is kept for this tab only.
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("readToken", decodeURIComponent(match[1]));
    const rest = location.hash.replace(/[#&?]?token=[^&]+/, "");
    history.replaceState(null, "", location.pathname + (rest && rest !== "#" ? (rest.startsWith("#") ? rest : "#" + rest) : ""));
  }
  return sessionStorage.getItem("readToken");
}

function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

const NEEDS_TOKEN = "this daemon needs its read token: open this page as /#token=<read token>";

export async function getJson(path) {
  const response = await fetch(path, { cache: "no-store", headers: authHeaders(readToken()) });
  if (response.status === 401) throw new ApiError(401, NEEDS_TOKEN);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.detail || `HTTP ${response.status}`);
  return body;
}

// A read that queues a run (plan, preview): the read token, no API token.
export async function postRead(path, body) {
  const response = await fetch(path, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...authHeaders(readToken()) } });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer.detail || `HTTP ${response.status}`);
  return answer;
}

// An action with the API token: asked for once per tab (kept in sessionStorage, never in the URL or
// localStorage), forgotten when the daemon refuses it. Returns {ok, answer, status, cancelled}.
export async function postAction(path, body, what) {
  let token = sessionStorage.getItem("apiToken");
  if (!token) {
    token = window.prompt(`API token for the ${what}:`);
    if (!token) return { ok: false, cancelled: true };
  }
  const response = await fetch(path, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...authHeaders(token) } });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) sessionStorage.removeItem("apiToken");
  else sessionStorage.setItem("apiToken", token);
  return { ok: response.ok, answer, status: response.status };
}

// Read a server-sent event stream over fetch; calls onEvent(name, data) per event. Resolves when the
// stream ends; rejects on a network error. `signal` aborts it.
export async function stream(path, onEvent, signal) {
  const response = await fetch(path, { cache: "no-store", headers: { Accept: "text/event-stream", ...authHeaders(readToken()) }, signal });
  if (!response.ok) throw new ApiError(response.status, response.status === 401 ? NEEDS_TOKEN : `HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

// Follow the daemon's `changed` events for as long as the page is open, reconnecting after a pause.
export function followChanges(onChange, onTrouble) {
  const loop = async () => {
    for (;;) {
      try {
        await stream("/api/events", name => name === "changed" && onChange());
      } catch (err) {
        onTrouble(err);
      }
      await new Promise(resolve => setTimeout(resolve, 2000));
    }
  };
  loop();
}
