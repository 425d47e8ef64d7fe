// One slot: each block's spread over the nodes (the share of nodes reached against the delay),
// and every node's sighting: when it heard of the block, imported, executed, made it best and
// finalized it, relative to the author (`/api/slots/{slot}`).

import { api, esc, num, nodeLink, failure } from "./lib.js";
import { ms, shortHash } from "./slots.js";

export function mount(root, [slot]) {
  root.innerHTML = `<p><a href="#/slots">← Slots</a></p><div id="slot"><p class="muted">Loading…</p></div>`;
  const view = root.querySelector("#slot");
  let stopped = false;
  (async () => {
    let detail;
    try {
      detail = await api(`/api/slots/${encodeURIComponent(slot)}`);
    } catch (e) {
      if (!stopped) view.innerHTML = failure(`slot ${slot}`, e);
      return;
    }
    if (stopped) return;
    const failures = detail.authoring_failures
      .map((f) => `<li>authoring failed on ${nodeLink(f.node_id)}: ${esc(f.reason)}</li>`)
      .join("");
    const never = detail.never_reached.length
      ? `<p class="bad" id="never-reached">Never reached: ${detail.never_reached.map(nodeLink).join(", ")}</p>`
      : "";
    view.innerHTML = `<section class="panel"><h1>Slot ${num(detail.slot)}${detail.fork ? ' <span class="bad">fork</span>' : ""}</h1>
      <p class="muted">Delays: ${esc(detail.measured)}.</p>${never}${failures ? `<ul>${failures}</ul>` : ""}</section>
      ${detail.blocks.map(block).join("")}`;
  })();
  return () => {
    stopped = true;
  };
}

function block(b) {
  const rows = b.nodes
    .map((n) => `<tr data-node="${esc(n.node_id)}"${n.author ? ' class="author"' : ""}>
      <td>${nodeLink(n.node_id)}${n.author ? " <b>author</b>" : ""}</td><td>${esc(n.implementation || "")}</td>
      <td class="n delay">${ms(n.delay_ms)}</td><td class="n">${ms(n.announced_ms)}</td><td class="n">${ms(n.importing_ms)}</td>
      <td class="n">${ms(n.executed_ms)}</td><td class="n">${ms(n.best_ms)}</td><td class="n">${ms(n.finalized_ms)}</td>
      <td>${n.failure ? `<span class="bad">${esc(n.failure)}</span>: ${esc(n.failure_reason)}` : ""}</td></tr>`)
    .join("");
  return `<section class="panel block" data-block="${esc(b.header_hash)}">
    <h2>Block ${shortHash(b.header_hash)} ${b.author ? "by " + nodeLink(b.author) : '<span class="muted">(author not connected)</span>'}</h2>
    <ul class="inline"><li>nodes reached <b class="reached">${num(b.nodes_reached)}</b></li><li>imported <b>${num(b.nodes_imported)}</b></li>
      <li>p50 <b>${ms(b.delay_p50_ms)}</b></li><li>p90 <b>${ms(b.delay_p90_ms)}</b></li><li>max <b class="max">${ms(b.delay_max_ms)}</b></li>
      <li>finalized after <b>${ms(b.finalization_lag_ms)}</b> (${num(b.nodes_finalized)} nodes)</li>
      <li>import failures <b>${num(b.import_failures)}</b></li><li>execution failures <b>${num(b.execution_failures)}</b></li></ul>
    ${reachChart(b.reached)}
    <div class="scroll"><table class="sightings"><thead><tr><th>Node</th><th>Implementation</th><th class="n">Learned</th><th class="n">Announced</th>
      <th class="n">Importing</th><th class="n">Executed</th><th class="n">Best</th><th class="n">Finalized</th><th>Failure</th></tr></thead>
      <tbody>${rows}</tbody></table></div></section>`;
}

/** The share of nodes reached (0–100%) against the delay, as steps: one per node reached. */
function reachChart(points, width = 900, height = 220) {
  if (!points.length) return `<p class="muted">No other node reported this block.</p>`;
  const pad = { left: 48, right: 12, top: 8, bottom: 28 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const max = Math.max(1, points[points.length - 1].delay_ms);
  const x = (d) => pad.left + (Math.max(0, d) / max) * w;
  const y = (share) => pad.top + h - share * h;
  let path = `M${x(0).toFixed(1)},${y(0).toFixed(1)}`;
  let share = 0;
  for (const p of points) {
    path += ` H${x(p.delay_ms).toFixed(1)} V${y(p.share).toFixed(1)}`;
    share = p.share;
  }
  path += ` H${x(max).toFixed(1)}`;
  return `<svg class="chart reach" viewBox="0 0 ${width} ${height}" role="img"
      aria-label="${points.length} nodes reached, ${Math.round(share * 100)}% after ${num(max)} ms" data-points="${points.length}">
    <line x1="${pad.left}" y1="${pad.top + h}" x2="${pad.left + w}" y2="${pad.top + h}" class="axis"/>
    <text x="${pad.left - 4}" y="${pad.top + 10}" text-anchor="end">100%</text>
    <text x="${pad.left - 4}" y="${pad.top + h}" text-anchor="end">0</text>
    <text x="${pad.left}" y="${height - 8}">0 ms</text>
    <text x="${pad.left + w}" y="${height - 8}" text-anchor="end">${num(max)} ms</text>
    <path d="${path}" fill="none" stroke="var(--accent)" stroke-width="2"/></svg>`;
}
