// Slots and blocks: the propagation delay of the blocks over time, and the newest slots with
// their blocks, forks, author, reach, delays, finalization lag and failures (`/api/slots`).

import { api, esc, num, nodeLink, failure, poll, RANGES, pickRange, rangeStart, choices, lineChart } from "./lib.js";

/** A delay in milliseconds, or a dash. */
export function ms(value) {
  return value === null || value === undefined ? "–" : num(value, value < 10 ? 1 : 0) + " ms";
}

export function shortHash(hash) {
  return `<span class="mono" title="${esc(hash)}">${esc(hash.slice(0, 10))}…</span>`;
}

export function mount(root, params, query) {
  const range = pickRange(query);
  root.innerHTML = `<section class="panel"><h1>Block propagation</h1>
    <p class="table-tools">Range: ${choices(Object.keys(RANGES), range, (r) => `#/slots?range=${r}`)}</p>
    <div id="propagation"><p class="muted">Loading…</p></div>
    <p class="muted" id="measured"></p></section>
    <section class="panel"><h2>Newest slots</h2>
    <div class="scroll"><table id="slot-table"><thead><tr><th>Slot</th><th>Block</th><th>Author</th>
      <th class="n">Nodes reached</th><th class="n">Imported</th><th class="n">p50</th><th class="n">p90</th><th class="n">Max</th>
      <th class="n">Finalized after</th><th>Failures</th></tr></thead><tbody></tbody></table></div></section>`;
  const chart = root.querySelector("#propagation");
  const body = root.querySelector("#slot-table tbody");

  async function loadSeries() {
    const from = rangeStart(range);
    let series;
    try {
      series = await api(`/api/slots/propagation?from=${encodeURIComponent(from)}`);
    } catch (e) {
      chart.innerHTML = failure("the propagation series", e);
      return;
    }
    root.querySelector("#measured").textContent = "Delays: " + series.measured + ".";
    const withBlocks = series.buckets.filter((b) => b.blocks > 0);
    const line = (label, field) => ({
      label,
      values: series.buckets.map((b) => b[field] ?? 0),
      total: withBlocks.length ? Math.max(...withBlocks.map((b) => b[field] ?? 0)) : 0,
    });
    chart.innerHTML = withBlocks.length
      ? lineChart(series.buckets.map((b) => Date.parse(b.start)), [
          line("p50 delay, ms (peak)", "delay_p50_ms"),
          line("p90 delay (peak)", "delay_p90_ms"),
          line("max delay (peak)", "delay_max_ms"),
        ])
      : `<p class="muted">No blocks seen in this range.</p>`;
  }

  async function loadSlots() {
    let list;
    try {
      list = await api("/api/slots");
    } catch (e) {
      body.innerHTML = `<tr><td colspan="10">${failure("the slots", e)}</td></tr>`;
      return;
    }
    body.innerHTML = list.slots.map(slotRows).join("") || `<tr><td class="muted" colspan="10">No block seen yet.</td></tr>`;
  }

  const stops = [poll(5_000, loadSlots), poll(15_000, loadSeries)];
  return () => stops.forEach((stop) => stop());
}

function slotRows(slot) {
  const link = `<a href="#/slot/${slot.slot}">${num(slot.slot)}</a>${slot.fork ? ' <span class="bad">fork</span>' : ""}`;
  const failed = slot.authoring_failures.map((f) => `authoring failed on ${nodeLink(f.node_id)}: ${esc(f.reason)}`).join("<br>");
  if (!slot.blocks.length) {
    return `<tr data-slot="${slot.slot}"><td>${link}</td><td class="muted" colspan="8">no block</td><td>${failed}</td></tr>`;
  }
  return slot.blocks
    .map((b, i) => {
      const failures = [
        b.import_failures ? `${num(b.import_failures)} import` : "",
        b.execution_failures ? `${num(b.execution_failures)} execution` : "",
        i === 0 ? failed : "",
      ].filter(Boolean).join(", ");
      return `<tr data-slot="${slot.slot}" data-block="${esc(b.header_hash)}">
        <td>${i === 0 ? link : ""}</td><td>${shortHash(b.header_hash)}</td>
        <td>${b.author ? nodeLink(b.author) : '<span class="muted">not connected</span>'}</td>
        <td class="n">${num(b.nodes_reached)}</td><td class="n">${num(b.nodes_imported)}</td>
        <td class="n">${ms(b.delay_p50_ms)}</td><td class="n">${ms(b.delay_p90_ms)}</td><td class="n">${ms(b.delay_max_ms)}</td>
        <td class="n">${ms(b.finalization_lag_ms)}</td><td>${failures || '<span class="muted">none</span>'}</td></tr>`;
    })
    .join("");
}
