// A page of events from the explorer (`/api/events` or a node's events), each one click from
// its linked events, with paging backwards by the explorer's cursor.

import { api, esc, failure } from "./lib.js";

/** The event's fields as one line, cut to `max` characters. */
export function summary(event, max = 160) {
  const json = event.data ?? event.event;
  const fields = json ? Object.values(json)[0] : null;
  const text = fields === null || fields === undefined ? "" : JSON.stringify(fields);
  return text.length > max ? text.slice(0, max) + "…" : text;
}

/**
 * Draws the page `path?params` into `box`; `goTo(before)` moves to the page older than
 * `before` (null: the newest).
 */
export async function eventsTable(box, path, params, goTo) {
  box.innerHTML = `<p class="muted">Loading events…</p>`;
  let page;
  try {
    page = await api(`${path}?${params}`);
  } catch (e) {
    box.innerHTML = failure("the events", e);
    return;
  }
  const rows = page.events
    .map((e) => `<tr data-event="${e.id}"><td><a href="#/event/${e.id}">${e.id}</a></td><td class="n">${esc(e.event_id)}</td>
      <td>${esc(e.event_name)} <span class="muted">${esc(e.event_type)}</span></td><td class="mono">${esc(e.timestamp)}</td>
      <td class="mono json">${esc(summary(e))}</td></tr>`)
    .join("");
  box.innerHTML = `${page.events.length ? `<div class="scroll"><table class="events"><thead><tr><th>Row</th><th>Event ID</th><th>Type</th><th>Time</th><th>Fields</th></tr></thead><tbody>${rows}</tbody></table></div>` : `<p class="muted">No events match.</p>`}
    <p class="pager">${params.get("before") ? `<button type="button" data-page="newest">Newest</button>` : ""}
    ${page.next_before ? `<button type="button" data-page="older">Older →</button>` : ""}
    ${page.truncated ? '<span class="muted">page cut at 8 MiB</span>' : ""}</p>`;
  box.querySelector("[data-page=newest]")?.addEventListener("click", () => goTo(null));
  box.querySelector("[data-page=older]")?.addEventListener("click", () => goTo(page.next_before));
}
