// Diffs as people read them: side by side, rendered by diff2html (bundled by `make ui`) from the
// unified diff the daemon sends (Git's value against the live one, field by field; Secrets masked).

import { el } from "./dom.js";

export function renderDiff(text, { left = "Git", right = "live" } = {}) {
  const box = el("div", { class: "diff", "data-diff": "true" });
  if (!text) { box.appendChild(el("p", { class: "muted" }, "No field differs.")); return box; }
  box.appendChild(el("div", { class: "diff-sides muted" }, el("span", {}, `left: ${left}`), el("span", {}, `right: ${right}`)));
  if (window.Diff2Html) {
    const html = window.Diff2Html.html(text, { drawFileList: false, outputFormat: "side-by-side", matching: "lines",
      diffStyle: "word", colorScheme: document.documentElement.dataset.theme === "dark" ? "dark" : "light" });
    const holder = el("div", { class: "diff-render" });
    holder.innerHTML = html;  // diff2html escapes the diff's text
    box.appendChild(holder);
  } else {
    box.appendChild(el("p", { class: "error" }, "The diff renderer is not installed (run `make ui`); the unified diff:"));
    box.appendChild(el("pre", {}, text));
  }
  return box;
}
