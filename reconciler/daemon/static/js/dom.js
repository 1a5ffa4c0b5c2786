// Small DOM helpers shared by every view: elements, times people read, links.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === "" || child === false) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}

export function svgEl(tag, attrs = {}, text = "") {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

// Times read as people read them ("3 min ago"); the exact time is on hover.
export function ago(iso) {
  if (!iso) return "–";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const abs = Math.abs(seconds);
  const [n, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return seconds >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

export function timeEl(iso) {
  if (!iso) return el("span", {}, "–");
  const exact = new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  return el("time", { datetime: iso, title: exact }, ago(iso));
}

export function badge(state, text = state) {
  return el("span", { class: `badge state-${String(state).replace(/\s+/g, "-")}` }, text);
}

export function short(sha) {
  return sha ? sha.slice(0, 10) : "–";
}

// A link to a view of the page (every view has its own URL: hash routes).
export function link(route, text, attrs = {}) {
  return el("a", { href: "#" + route, ...attrs }, text);
}

export function envRoute(env) { return `/env/${encodeURIComponent(env)}`; }
export function stackRoute(env, stack, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return `${envRoute(env)}/stack/${encodeURIComponent(stack)}${query ? "?" + query : ""}`;
}
export function runRoute(id) { return `/run/${encodeURIComponent(id)}`; }
