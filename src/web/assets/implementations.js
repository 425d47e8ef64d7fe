// Implementations side by side (`/api/implementations`), each linked to its conformance report.

import { api, esc, num, failure, poll } from "./lib.js";

export function mount(root) {
  root.innerHTML = `<section class="panel"><h1>Implementations</h1><div id="impl-list"><p class="muted">Loading…</p></div></section>`;
  const box = root.querySelector("#impl-list");
  async function load() {
    let body;
    try {
      body = await api("/api/implementations");
    } catch (e) {
      box.innerHTML = failure("the implementations", e);
      return;
    }
    const bad = (n) => (n > 0 ? ' class="n bad"' : ' class="n"');
    box.innerHTML = `<div class="scroll"><table id="impl-table"><thead><tr><th>Implementation</th><th>Version</th><th>Nodes</th><th>Sessions</th><th>Reconnects</th>
      <th>Events stored</th><th>Decode failures</th><th>Undefined</th><th>Dangling refs</th><th>Dropped</th><th>Refused</th></tr></thead><tbody>
      ${body.implementations
        .map((i) => `<tr data-impl="${esc(i.name)}"><td><a href="#/implementations/${encodeURIComponent(i.name)}">${esc(i.name)}</a></td><td>${esc(i.version)}</td>
          <td class="n">${num(i.nodes_connected)} / ${num(i.nodes_known)}</td><td class="n">${num(i.sessions)}</td><td class="n">${num(i.reconnects)}</td>
          <td class="n">${num(i.events_stored)}</td><td${bad(i.decode_failures)}>${num(i.decode_failures)}</td><td${bad(i.undefined_events)}>${num(i.undefined_events)}</td>
          <td${bad(i.dangling_references)}>${num(i.dangling_references)}</td><td class="n">${num(i.events_dropped)}</td><td${bad(i.refused_handshakes)}>${num(i.refused_handshakes)}</td></tr>`)
        .join("")}</tbody></table></div><p class="muted">Counted ${esc(body.counted)}.</p>`;
  }
  return poll(15_000, load);
}
