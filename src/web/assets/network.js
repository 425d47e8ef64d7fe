// The network page: tiles over /api/network and the event rate, and the live node table over
// /api/nodes (sort by any column, filter as you type, pin rows to the top, stale rows greyed;
// its settings are kept in local storage).

import { api, poll, esc, num, ago, nodeLink, sparkline, rangeStart } from "./lib.js";

const SETTINGS_KEY = "tart.nodeTable";
/** A node not heard from for this long is greyed, even while its connection is open. */
const STALE_MS = 30_000;
const NODES_EVERY_MS = 2_000;
const NETWORK_EVERY_MS = 5_000;
const RATE_EVERY_MS = 30_000;

/** The table's columns: a key, a heading and how a node's value is read for sorting. */
const COLUMNS = [
  { key: "node", label: "Node", value: (n) => n.node_id },
  { key: "impl", label: "Implementation", value: (n) => `${n.implementation_name} ${n.implementation_version}` },
  { key: "protocol", label: "Protocol", value: (n) => n.protocol_version },
  { key: "best", label: "Best", value: (n) => n.best_slot },
  { key: "finalized", label: "Finalized", value: (n) => n.finalized_slot },
  { key: "behind", label: "Behind", value: (n) => n.behind },
  { key: "peers", label: "Peers", value: (n) => n.peers },
  { key: "rate", label: "Events/s", value: (n) => n.rate },
  { key: "seen", label: "Last seen", value: (n) => (n.last_seen_at ? Date.parse(n.last_seen_at) : null) },
  { key: "failures", label: "Decode failures", value: (n) => n.decode_failures },
];

function loadSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
    return { sort: saved.sort || "seen", descending: saved.descending ?? true, filter: saved.filter || "", pinned: saved.pinned || [] };
  } catch (e) {
    return { sort: "seen", descending: true, filter: "", pinned: [] };
  }
}

export function mount(root) {
  const settings = loadSettings();
  const pinned = new Set(settings.pinned);
  const save = () => localStorage.setItem(SETTINGS_KEY, JSON.stringify({ ...settings, pinned: [...pinned] }));
  let nodes = [];
  let total = 0;
  let medianBest = null;
  /** Each node's event count at the previous poll, for its events/s. */
  let previous = new Map();
  let previousAt = 0;
  let drawQueued = false;

  root.innerHTML = `
    <section class="tiles" id="tiles">
      <div class="tile" id="tile-nodes"><h2>Nodes</h2><p class="big">–</p><p class="muted">connected / known</p></div>
      <div class="tile" id="tile-best"><h2>Best slot</h2><p class="big">–</p><p class="muted"></p></div>
      <div class="tile" id="tile-finalized"><h2>Finalized slot</h2><p class="big">–</p><p class="muted"></p></div>
      <div class="tile" id="tile-eps"><h2>Events/s</h2><p class="big">–</p><p class="muted"></p><div class="spark-box"></div></div>
      <div class="tile wide" id="tile-impls"><h2>Implementations</h2><ul class="mix"></ul></div>
      <div class="tile" id="tile-protocols"><h2>Protocol versions</h2><ul class="mix"></ul></div>
    </section>
    <section class="panel" id="problems"></section>
    <section class="panel">
      <div class="table-tools">
        <label>Filter <input id="node-filter" type="search" placeholder="id, implementation, version…" value="${esc(settings.filter)}" autocomplete="off"></label>
        <span id="node-count" class="muted"></span>
        <span class="muted">Click a heading to sort · ☆ pins a node to the top · grey: not heard from for 30 s</span>
      </div>
      <div class="scroll"><table id="node-table" class="nodes">
        <thead><tr><th class="pin-col"><span class="sr-only">Pin</span></th>${COLUMNS.map((c) => `<th><button type="button" data-sort="${c.key}">${c.label}<span class="arrow"></span></button></th>`).join("")}</tr></thead>
        <tbody></tbody>
      </table></div>
    </section>`;
  const tbody = root.querySelector("#node-table tbody");
  const filterInput = root.querySelector("#node-filter");

  function visible() {
    const words = settings.filter.toLowerCase().split(/\s+/).filter(Boolean);
    const column = COLUMNS.find((c) => c.key === settings.sort) || COLUMNS[0];
    const sign = settings.descending ? -1 : 1;
    const compare = (a, b) => {
      const [x, y] = [column.value(a), column.value(b)];
      if (x === y) return a.node_id < b.node_id ? -1 : 1;
      if (x === null || x === undefined) return 1; // unknown values last either way
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    };
    return nodes
      .filter((n) => words.every((w) => n.search.includes(w)))
      .sort((a, b) => (pinned.has(b.node_id) - pinned.has(a.node_id)) || compare(a, b));
  }

  function row(n, now) {
    const stale = !n.is_connected || !n.last_seen_at || now - Date.parse(n.last_seen_at) > STALE_MS;
    const isPinned = pinned.has(n.node_id);
    return `<tr data-node="${esc(n.node_id)}" class="${stale ? "stale" : ""}${isPinned ? " pinned" : ""}">
      <td><button type="button" class="pin" data-pin="${esc(n.node_id)}" aria-pressed="${isPinned}" title="${isPinned ? "Unpin" : "Pin to the top"}">${isPinned ? "★" : "☆"}</button></td>
      <td>${nodeLink(n.node_id)}</td>
      <td>${esc(n.implementation_name)} <span class="muted">${esc(n.implementation_version)}</span></td>
      <td>v${esc(n.protocol_version)} <span class="muted">${esc(n.gp_version)}</span></td>
      <td class="n">${num(n.best_slot)}</td>
      <td class="n">${num(n.finalized_slot)}</td>
      <td class="n${n.behind > 5 ? " bad" : ""}">${num(n.behind)}</td>
      <td class="n">${num(n.peers)}</td>
      <td class="n">${n.rate === null ? "–" : num(n.rate, 1)}</td>
      <td>${n.is_connected ? "" : '<span class="muted">offline · </span>'}${esc(ago(n.last_seen_at, now))}</td>
      <td class="n${n.decode_failures > 0 ? " bad" : ""}">${num(n.decode_failures)}</td>
    </tr>`;
  }

  function draw() {
    drawQueued = false;
    const now = Date.now();
    // From the latest median, which may have come after the node list.
    for (const n of nodes) {
      n.behind = medianBest !== null && n.best_slot !== null ? Math.max(0, medianBest - n.best_slot) : null;
    }
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.pin : null;
    const shown = visible();
    tbody.innerHTML = shown.map((n) => row(n, now)).join("");
    root.querySelector("#node-count").textContent = `${shown.length} of ${nodes.length} shown${total > nodes.length ? ` (${total} known, first ${nodes.length} listed)` : ""}`;
    for (const th of root.querySelectorAll("[data-sort]")) {
      const active = th.dataset.sort === settings.sort;
      th.parentElement.setAttribute("aria-sort", active ? (settings.descending ? "descending" : "ascending") : "none");
      th.querySelector(".arrow").textContent = active ? (settings.descending ? " ▼" : " ▲") : "";
    }
    if (focused) tbody.querySelector(`[data-pin="${CSS.escape(focused)}"]`)?.focus();
    if (shown.length && window.__tartFirstRender === undefined) {
      window.__tartFirstRender = performance.now();
    }
  }

  /** Coalesces redraws (typing, clicks, polls) into one per frame. */
  function redraw() {
    if (!drawQueued) {
      drawQueued = true;
      requestAnimationFrame(draw);
    }
  }

  root.querySelector("thead").addEventListener("click", (e) => {
    const button = e.target.closest("[data-sort]");
    if (!button) return;
    if (settings.sort === button.dataset.sort) settings.descending = !settings.descending;
    else {
      settings.sort = button.dataset.sort;
      settings.descending = false;
    }
    save();
    redraw();
  });
  tbody.addEventListener("click", (e) => {
    const button = e.target.closest("[data-pin]");
    if (!button) return;
    const id = button.dataset.pin;
    if (pinned.has(id)) pinned.delete(id);
    else pinned.add(id);
    save();
    draw();
  });
  // "change" too: clearing a field by script (or WebDriver) sends no "input".
  for (const kind of ["input", "change"]) {
    filterInput.addEventListener(kind, () => {
      settings.filter = filterInput.value;
      save();
      redraw();
    });
  }

  async function loadNodes() {
    const body = await api("/api/nodes");
    const now = performance.now();
    const seconds = previousAt ? (now - previousAt) / 1000 : 0;
    const counts = new Map();
    nodes = body.nodes.map((n) => {
      counts.set(n.node_id, n.event_count);
      const before = previous.get(n.node_id);
      const rate = seconds > 0 && before !== undefined ? Math.max(0, n.event_count - before) / seconds : null;
      const search = `${n.node_id} ${n.implementation_name} ${n.implementation_version} v${n.protocol_version} ${n.gp_version}`.toLowerCase();
      return { ...n, rate, search };
    });
    total = body.total;
    previous = counts;
    previousAt = now;
    if (seconds > 0) {
      const rate = nodes.reduce((sum, n) => sum + (n.rate || 0), 0);
      root.querySelector("#tile-eps .big").textContent = num(rate, 0);
    }
    draw();
  }

  async function loadNetwork() {
    const net = await api("/api/network");
    medianBest = net.best_slot.median;
    redraw();
    const tile = (id) => root.querySelector("#" + id);
    tile("tile-nodes").querySelector(".big").textContent = `${num(net.connected_nodes)} / ${num(net.known_nodes)}`;
    for (const [id, spread] of [["tile-best", net.best_slot], ["tile-finalized", net.finalized_slot]]) {
      tile(id).querySelector(".big").textContent = num(spread.median);
      tile(id).querySelector(".muted").textContent = spread.reporting_nodes
        ? `median of ${spread.reporting_nodes}; ${num(spread.lowest)}–${num(spread.highest)}`
        : "no node reports yet";
    }
    tile("tile-eps").querySelector(".muted").textContent = `now, over the listed nodes; ${num(net.events_per_second, 0)}/s stored over the last ${num(net.events_per_second_window_minutes)} min`;
    tile("tile-impls").querySelector(".mix").innerHTML = net.implementations
      .map((i) => `<li><a href="#/implementations/${encodeURIComponent(i.name)}">${esc(i.name)}</a> <span class="muted">${esc(i.version)}</span> <b>${num(i.connected)}</b><span class="muted">/${num(i.known)}</span></li>`)
      .join("") || '<li class="muted">none yet</li>';
    tile("tile-protocols").querySelector(".mix").innerHTML = net.protocol_versions
      .map((p) => `<li>v${esc(p.value)} <b>${num(p.connected)}</b><span class="muted">/${num(p.known)}</span></li>`)
      .join("") || '<li class="muted">none yet</li>';
    const p = net.problems;
    const behind = net.behind.nodes.slice(0, 5).map((b) => `${nodeLink(b.node_id)} ${num(b.behind_median_by)} slots`).join(", ");
    root.querySelector("#problems").innerHTML = `<h2>Problems <span class="muted">(sessions of the last ${num(net.problems_window_hours)} h)</span></h2>
      <ul class="inline">
        <li class="${p.decode_failures ? "bad" : ""}">decode failures <b>${num(p.decode_failures)}</b></li>
        <li class="${p.undefined_events ? "bad" : ""}">undefined events <b>${num(p.undefined_events)}</b></li>
        <li>dropped by nodes <b>${num(p.events_dropped_by_nodes)}</b></li>
        <li>rate-limited <b>${num(p.events_rate_limited)}</b></li>
        <li>refused handshakes <b>${num(p.refused_handshakes)}</b></li>
        <li class="${net.behind.count ? "bad" : ""}">more than ${num(net.behind.threshold_slots)} slots behind <b>${num(net.behind.count)}</b>${behind ? ": " + behind : ""}</li>
      </ul>`;
  }

  /** The last hour's events per second, a point a minute (the current minute is still open). */
  async function loadRate() {
    const series = await api(`/api/timeseries?group_by=implementation&step=60&from=${encodeURIComponent(rangeStart("1h"))}`);
    const perBucket = series.buckets.map((_, i) => series.series.reduce((sum, s) => sum + s.values[i], 0) / series.step_seconds);
    root.querySelector("#tile-eps .spark-box").innerHTML = sparkline(perBucket.slice(0, -1));
  }

  const stops = [poll(NETWORK_EVERY_MS, loadNetwork), poll(NODES_EVERY_MS, loadNodes), poll(RATE_EVERY_MS, loadRate)];
  return () => stops.forEach((stop) => stop());
}
