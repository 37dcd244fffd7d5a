// A paginated list in a <ul>: the first page replaces it, "more" appends the
// next. Only the latest load shows what it read, so one that finishes late (an
// older listing, or another session's) never overwrites a newer one.

import * as api from "./api.js";
import { $, attempt, el } from "./dom.js";

export class PagedList {
  /**
   * `list`, `more` and `error`: the ids of the <ul>, its "more" button and its
   * alert; `url()`: where the pages are; `row(item)`: an item's <li>; `empty`:
   * what an empty list says; `limit`: items a page.
   */
  constructor({ list, more, error, url, row, empty, limit }) {
    Object.assign(this, { list, more, error, url, row, empty, limit });
    /** The cursor of the next page (its `after`), or "". */
    this.next = "";
    this.loads = 0;
    $(more).addEventListener("click", () => this.load(true));
  }

  /** Loads the first page, or with `more` the next one. */
  async load(more = false) {
    const mine = ++this.loads;
    await attempt(this.error, async () => {
      const query = new URLSearchParams({ limit: String(this.limit) });
      if (more && this.next) query.set("after", this.next);
      const page = await api.get(`${this.url()}?${query}`);
      if (mine !== this.loads) return;
      const rows = page.data.map(this.row);
      if (more) {
        $(this.list).append(...rows);
      } else {
        $(this.list).replaceChildren(...rows);
        if (!rows.length) $(this.list).append(el("li", { class: "muted", text: this.empty }));
      }
      this.next = page.has_more ? page.last_id : "";
      $(this.more).hidden = !page.has_more;
    });
  }

  /** Empties the list; a load under way no longer shows. */
  clear() {
    this.loads += 1;
    $(this.list).replaceChildren();
  }
}
