// Peers: who is connected to whom as the nodes' own events say, the links that flap most, each
// node's peer counts from its latest Status, and churn over time (`/api/peers`,
// `/api/peers/churn`).

import { api, esc, num, nodeLink, failure, poll, ago, lineChart } from "./lib.js";

export function mount(root) {
  root.innerHTML = `<section class="panel"><h1>Peers</h1>
    <p class="muted">Links as each node's events tell them (Connected in/out, Disconnected) over the last day; a peer that does not report to TART is shown by its Peer ID.</p>
    <div id="churn"><p class="muted">Loading…</p></div></section>
    <div class="columns"><section class="panel"><h2>Most flapping links</h2><div class="scroll"><table id="flapping-table"><thead><tr><th>Node</th><th>Peer</th>
      <th class="n">Connects</th><th class="n">Disconnects</th><th>Now</th><th>Changed</th></tr></thead><tbody></tbody></table></div></section>
    <section class="panel"><h2>Nodes</h2><div class="scroll"><table id="peer-nodes"><thead><tr><th>Node</th><th class="n">Links up</th><th class="n">To unknown peers</th>
      <th class="n">Status: peers</th><th class="n">validators</th><th class="n">block announcement</th></tr></thead><tbody></tbody></table></div></section></div>`;

  const peer = (l) => (l.peer_node_id ? nodeLink(l.peer_node_id) : `<span class="mono muted" title="${esc(l.peer_id)}">${esc(l.peer_id.slice(0, 8))}… unknown</span>`);

  async function loadGraph() {
    let graph;
    try {
      graph = await api("/api/peers");
    } catch (e) {
      root.querySelector("#flapping-table tbody").innerHTML = `<tr><td colspan="6">${failure("the peers", e)}</td></tr>`;
      return;
    }
    root.querySelector("#flapping-table tbody").innerHTML =
      graph.flapping
        .map((l) => `<tr data-node="${esc(l.node_id)}" data-peer="${esc(l.peer_id)}"><td>${nodeLink(l.node_id)}</td><td>${peer(l)}</td>
          <td class="n connects">${num(l.connects)}</td><td class="n disconnects">${num(l.disconnects)}</td>
          <td class="${l.connected ? "ok" : "bad"}">${l.connected ? "up" : "down"}</td><td>${ago(l.changed_at)}</td></tr>`)
        .join("") || `<tr><td class="muted" colspan="6">No link went down.</td></tr>`;
    root.querySelector("#peer-nodes tbody").innerHTML = graph.nodes
      .map((n) => `<tr data-node="${esc(n.node_id)}"><td>${nodeLink(n.node_id)}</td><td class="n">${num(n.connected)}</td><td class="n">${num(n.unknown)}</td>
        <td class="n">${num(n.reported?.num_peers)}</td><td class="n">${num(n.reported?.num_validator_peers)}</td><td class="n">${num(n.reported?.num_block_announcement_peers)}</td></tr>`)
      .join("");
  }

  async function loadChurn() {
    let churn;
    try {
      churn = await api("/api/peers/churn");
    } catch (e) {
      root.querySelector("#churn").innerHTML = failure("the churn", e);
      return;
    }
    const minutes = churn.minutes;
    const line = (label, field) => ({ label, values: minutes.map((m) => m[field]), total: minutes.reduce((a, m) => a + m[field], 0) });
    root.querySelector("#churn").innerHTML = minutes.length
      ? lineChart(minutes.map((m) => Date.parse(m.minute)), [line("connects per minute", "connects"), line("disconnects per minute", "disconnects")])
      : `<p class="muted">No peer connected or disconnected in the last hour.</p>`;
  }

  const stops = [poll(5_000, loadGraph), poll(15_000, loadChurn)];
  return () => stops.forEach((stop) => stop());
}
