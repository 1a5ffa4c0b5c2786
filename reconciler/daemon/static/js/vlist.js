// A list that draws only the rows on screen (plus a few), so a stack of thousands of objects opens
// and scrolls as fast as one of ten. Rows have one fixed height; keyboard: arrows, Page Up/Down,
// Home/End move the selection, Enter opens it.

import { el } from "./dom.js";

const OVERSCAN = 8;

export class VirtualList {
  constructor({ rowHeight, renderRow, onOpen, label }) {
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.onOpen = onOpen;
    this.items = [];
    this.selected = -1;
    this.spacer = el("div", { class: "vlist-spacer" });
    this.window = el("div", { class: "vlist-window", role: "rowgroup" });
    this.spacer.appendChild(this.window);
    this.root = el("div", { class: "vlist", tabindex: "0", role: "grid", "aria-label": label }, this.spacer);
    this.root.addEventListener("scroll", () => this.draw());
    this.root.addEventListener("keydown", event => this.key(event));
    new ResizeObserver(() => this.draw()).observe(this.root);
  }

  setItems(items, keepSelected = null) {
    this.items = items;
    this.selected = keepSelected === null ? -1 : items.findIndex(i => i.key === keepSelected);
    this.root.setAttribute("aria-rowcount", String(items.length));
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    this.draw();
  }

  draw() {
    const top = this.root.scrollTop, height = this.root.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((top + height) / this.rowHeight) + OVERSCAN);
    this.window.style.transform = `translateY(${first * this.rowHeight}px)`;
    const rows = [];
    for (let i = first; i < last; i++) {
      const row = this.renderRow(this.items[i], i);
      row.style.height = `${this.rowHeight}px`;
      row.setAttribute("aria-rowindex", String(i + 1));
      row.id = `vrow-${i}`;
      if (i === this.selected) row.setAttribute("aria-selected", "true");
      row.addEventListener("click", () => { this.select(i); if (this.items[i].openable) this.onOpen(this.items[i]); });
      rows.push(row);
    }
    this.window.replaceChildren(...rows);
  }

  select(index) {
    this.selected = Math.max(0, Math.min(this.items.length - 1, index));
    const y = this.selected * this.rowHeight;
    if (y < this.root.scrollTop) this.root.scrollTop = y;
    else if (y + this.rowHeight > this.root.scrollTop + this.root.clientHeight) this.root.scrollTop = y + this.rowHeight - this.root.clientHeight;
    const id = `vrow-${this.selected}`;
    this.root.setAttribute("aria-activedescendant", id);
    this.draw();
  }

  key(event) {
    const page = Math.max(1, Math.floor(this.root.clientHeight / this.rowHeight) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    if (event.key in moves) this.select((this.selected < 0 ? -1 : this.selected) + moves[event.key]);
    else if (event.key === "Home") this.select(0);
    else if (event.key === "End") this.select(this.items.length - 1);
    else if (event.key === "Enter" && this.selected >= 0 && this.items[this.selected].openable) this.onOpen(this.items[this.selected]);
    else return;
    event.preventDefault();
  }
}
