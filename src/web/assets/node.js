// A node: its NodeInformation, latest Status, conformance figures (sessions, decode failures,
// clock skew) and its events through the explorer's filters and paging. The filters and the
// page are in the URL (`#/node/<id>?type=…&from=…&to=…&before=…`), so a view can be shared.

import { api, esc, num, ago, failure, poll, skewRanges } from "./lib.js";
import { eventsTable } from "./events.js";

const PAGE = 50;

function pairs(object) {
  return Object.entries(object || {})
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === "object" && v !== null ? JSON.stringify(v) : v)}</td></tr>`)
    .join("");
}

function skew(s) {
  const ranges = skewRanges(s);
  return ranges ? `${ranges}${s.absurd ? ' <b class="bad">absurd</b>' : ""}` : "–";
}

export function mount(root, [nodeId], query) {
  root.innerHTML = `<p><a href="#/">← Network</a></p>
    <section class="panel" id="node-head"><p class="muted">Loading the node…</p></section>
    <div class="columns">
      <section class="panel" id="node-info"><h2>NodeInformation</h2></section>
      <section class="panel" id="node-status"><h2>Latest Status</h2></section>
    </div>
    <section class="panel" id="node-conformance"><h2>Conformance</h2></section>
    <section class="panel" id="node-events"><h2>Events</h2>
      <form id="event-filters" class="table-tools">
        <label>Types <input name="type" placeholder="e.g. BestBlockChanged,10" value="${esc(query.get("type") || "")}"></label>
        <label>From <input name="from" placeholder="RFC 3339, UTC" value="${esc(query.get("from") || "")}"></label>
        <label>To <input name="to" placeholder="RFC 3339, UTC" value="${esc(query.get("to") || "")}"></label>
        <button type="submit">Apply</button>
      </form>
      <div id="event-page"></div>
    </section>`;

  const head = root.querySelector("#node-head");
  async function loadNode() {
    let node;
    try {
      node = await api(`/api/nodes/${nodeId}`);
    } catch (e) {
      head.innerHTML = failure("the node", e);
      return;
    }
    head.innerHTML = `<h1 class="mono">${esc(nodeId)}</h1>
      <p>${esc(node.implementation_name)} ${esc(node.implementation_version)} · protocol v${esc(node.protocol_version)} · ${esc(node.gp_version)} (${esc(node.params_layout)})
      · <b class="${node.is_connected ? "ok" : "muted"}">${node.is_connected ? "connected" : "offline"}</b>, last seen ${esc(ago(node.last_seen_at))}
      · best ${num(node.best_slot)} · finalized ${num(node.finalized_slot)} · ${num(node.event_count)} events · from ${esc(node.remote_address || "–")}</p>
      <p><a href="#/live?node=${esc(nodeId)}">Its live stream</a> · <a href="#/implementations/${encodeURIComponent(node.implementation_name)}">its implementation's report</a></p>`;
    const info = node.node_info;
    root.querySelector("#node-info").innerHTML = `<h2>NodeInformation</h2><table class="kv">
      <tr><th>peer id</th><td class="mono">${esc(node.peer_id)}</td></tr>
      <tr><th>genesis</th><td class="mono">${esc(info.genesis)}</td></tr>
      <tr><th>flags</th><td>${esc(info.flags)}</td></tr>
      <tr><th>gp version</th><td>${esc(info.gp_version)}</td></tr>
      <tr><th>note</th><td>${esc(info.note)}</td></tr>
      <tr><th>address</th><td>${esc(JSON.stringify(info.address))}</td></tr>
      ${info.params_diagnosis ? `<tr><th>params diagnosis</th><td class="bad">${esc(JSON.stringify(info.params_diagnosis))}</td></tr>` : ""}
      </table>
      <details><summary>JAM parameters (${Object.keys(info.params || {}).length}, layout ${esc(node.params_layout)})</summary>
      <table class="kv">${pairs(info.params)}<tr><th>as sent</th><td class="mono">${esc(info.params_raw || "")}</td></tr></table></details>`;
    const status = node.latest_status;
    const fields = status ? status.data.Status : null;
    root.querySelector("#node-status").innerHTML = fields
      ? `<h2>Latest Status <span class="muted">${esc(ago(status.timestamp))}</span></h2><table class="kv">${pairs({
          ...fields,
          guarantees_by_core: `${fields.guarantees_by_core.length} cores, ${fields.guarantees_by_core.reduce((a, b) => a + b, 0)} guarantees`,
        })}</table>`
      : `<h2>Latest Status</h2><p class="muted">No Status event yet.</p>`;
  }

  async function loadConformance() {
    const box = root.querySelector("#node-conformance");
    let sessions, failures;
    try {
      [sessions, failures] = await Promise.all([api(`/api/nodes/${nodeId}/sessions?limit=10`), api(`/api/nodes/${nodeId}/failures?limit=10`)]);
    } catch (e) {
      box.innerHTML = `<h2>Conformance</h2>` + failure("its sessions", e);
      return;
    }
    const c = sessions.counters;
    const list = sessions.sessions
      .map((s) => `<tr><td>${esc(s.state)}${s.refusal ? ": " + esc(s.refusal) : ""}</td><td>${esc(ago(s.connected_at))}</td><td>${esc(s.disconnect_reason || "")}</td>
        <td class="n">${num(s.events_received)}</td><td class="n">${num(s.events_stored)}</td><td class="n">${num(s.decode_failures)}</td>
        <td class="n">${num(s.undefined_events)}</td><td class="n">${num(s.events_dropped)}</td><td>${skew(s.clock_skew)}</td></tr>`)
      .join("");
    const fails = failures.failures
      .map((f) => `<tr><td>${esc(f.error)}</td><td>${esc(f.claimed_name || f.claimed_type)}</td><td class="mono hex">${esc((f.raw || "").slice(0, 96))}${f.raw_bytes > 48 ? "…" : ""}</td></tr>`)
      .join("");
    box.innerHTML = `<h2>Conformance</h2>
      <ul class="inline" id="node-counters">
        <li>sessions <b>${num(c.sessions)}</b></li><li>refused handshakes <b>${num(c.refused_handshakes)}</b></li>
        <li class="${c.decode_failures ? "bad" : ""}">decode failures <b>${num(c.decode_failures)}</b></li>
        <li class="${c.undefined_events ? "bad" : ""}">undefined events <b>${num(c.undefined_events)}</b></li>
        <li>rate-limited <b>${num(c.events_rate_limited)}</b></li><li>dropped by the node <b>${num(c.events_dropped)}</b></li>
      </ul>
      <div class="scroll"><table><thead><tr><th>Session</th><th>Connected</th><th>Ended</th><th>Received</th><th>Stored</th><th>Decode failures</th><th>Undefined</th><th>Dropped</th><th>Clock skew</th></tr></thead><tbody>${list}</tbody></table></div>
      ${fails ? `<h3>Frames that did not decode</h3><table><thead><tr><th>Error</th><th>Claimed type</th><th>Raw</th></tr></thead><tbody>${fails}</tbody></table>` : ""}`;
  }

  const filters = root.querySelector("#event-filters");
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const name of ["type", "from", "to"]) {
      const value = filters[name].value.trim();
      if (value) next.set(name, value);
    }
    location.hash = `#/node/${nodeId}?${next}`;
  });
  const page = new URLSearchParams(query);
  page.set("limit", PAGE);
  eventsTable(root.querySelector("#event-page"), `/api/nodes/${nodeId}/events`, page, (before) => {
    const next = new URLSearchParams(query);
    if (before) next.set("before", before);
    else next.delete("before");
    location.hash = `#/node/${nodeId}?${next}`;
  });

  loadNode();
  const stop = poll(10_000, loadConformance);
  return stop;
}
