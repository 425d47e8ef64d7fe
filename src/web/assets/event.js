// One event with its linked events: what its Event ID field points at and what points at it.

import { api, esc, nodeLink, failure } from "./lib.js";
import { summary } from "./events.js";

function line(e) {
  return `<a href="#/event/${e.id}">#${e.id}</a> ${esc(e.event_name)} <span class="muted">ID ${esc(e.event_id)} · ${esc(e.timestamp)}</span> <span class="mono json">${esc(summary(e, 100))}</span>`;
}

export function mount(root, [id]) {
  root.innerHTML = `<p class="muted">Loading event ${esc(id)}…</p>`;
  api(`/api/events/${id}`).then(
    (linked) => {
      const e = linked.event;
      const ref = linked.reference;
      const reference = !ref
        ? `<p class="muted">This event type has no Event ID field.</p>`
        : ref.state === "resolved"
          ? `<p id="reference">Points at event ID ${esc(ref.event_id)}: ${line(ref.event)}</p>`
          : `<p id="reference" class="${ref.state === "dangling" ? "bad" : "muted"}">Points at event ID ${esc(ref.event_id)}: <b>${esc(ref.state)}</b>${ref.state === "dangling" ? " (its connection sent no event of a type it may point at with that ID)" : ""}</p>`;
      const referrers = linked.referred_by.length
        ? `<ul id="referred-by">${linked.referred_by.map((r) => `<li>${line(r)}</li>`).join("")}</ul>`
        : `<p class="muted">No event points at it (searched the next ${esc(linked.referred_by_searched)} events of its node).</p>`;
      root.innerHTML = `<p><a href="#/node/${esc(e.node_id)}">← Its node</a></p>
        <section class="panel"><h1>${esc(e.event_name)} <span class="muted">#${e.id}</span></h1>
        <p>From ${nodeLink(e.node_id)} · event ID ${esc(e.event_id)} · type ${esc(e.event_type)} · ${esc(e.timestamp)}</p>
        <pre class="json" id="event-json">${esc(JSON.stringify(e.data, null, 2))}</pre></section>
        <section class="panel"><h2>Reference</h2>${reference}</section>
        <section class="panel"><h2>Referred to by</h2>${referrers}</section>`;
    },
    (e) => {
      root.innerHTML = failure("the event", e);
    },
  );
}
