// One work-package's journey: a timeline per guarantor (submitted or shared, received,
// authorized, refined, report built, guarantee built, distributed, or failed), the guarantees
// received by the validators, and the figures (`/api/work-packages/{hash}`).

import { api, esc, num, nodeLink, failure } from "./lib.js";
import { ms, shortHash } from "./slots.js";

/** The stages a journey may show, in order, with their marker's label. */
const STAGES = [
  ["submitted", "S"],
  ["received", "R"],
  ["authorized", "A"],
  ["refined", "F"],
  ["report_built", "W"],
  ["guarantee_built", "G"],
  ["distributed", "D"],
  ["failed", "✕"],
];

export function mount(root, [hash]) {
  root.innerHTML = `<p><a href="#/work-packages">← Work-packages</a></p><div id="package"><p class="muted">Loading…</p></div>`;
  const view = root.querySelector("#package");
  let stopped = false;
  (async () => {
    let detail;
    try {
      detail = await api(`/api/work-packages/${encodeURIComponent(hash)}`);
    } catch (e) {
      if (!stopped) view.innerHTML = failure("the work-package", e);
      return;
    }
    if (stopped) return;
    const p = detail.package;
    const receipts = detail.guarantee_receipts
      .map((r) => `<li data-node="${esc(r.node_id)}">${nodeLink(r.node_id)} after <b>${ms(r.after_ms)}</b></li>`)
      .join("");
    view.innerHTML = `<section class="panel"><h1>Work-package ${shortHash(p.hash)}</h1>
      <ul class="inline"><li>core <b>${p.core}</b></li><li>status <b id="package-status">${esc(p.status)}</b></li>
        <li>furthest stage <b>${esc((p.furthest_stage || "–").replace("_", " "))}</b></li>
        ${p.failure_reason ? `<li class="bad">failed: ${esc(p.failure_reason)}</li>` : ""}
        <li>guarantors <b>${num(p.nodes)}</b></li><li>guarantees sent <b>${num(p.guarantees_sent)}</b>, failed ${num(p.guarantee_send_failures)}</li>
        <li>refine gas <b>${num(p.refine_gas)}</b></li></ul>
      <p class="muted">Times: ${esc(detail.counted)}.</p></section>
      <section class="panel"><h2>Journey</h2>${timeline(detail.journeys)}
      <div class="scroll"><table id="journey-table"><thead><tr><th>Node</th><th>Role</th>
        ${STAGES.map(([s]) => `<th class="n">${s.replace("_", " ")}</th>`).join("")}<th>Failure</th></tr></thead><tbody>
        ${detail.journeys.map(journeyRow).join("")}</tbody></table></div></section>
      <section class="panel"><h2>Guarantee received by</h2>${receipts ? `<ul id="receipts">${receipts}</ul>` : '<p class="muted" id="receipts">No validator reported receiving its guarantee.</p>'}</section>`;
  })();
  return () => {
    stopped = true;
  };
}

function journeyRow(j) {
  return `<tr data-node="${esc(j.node_id)}"><td>${nodeLink(j.node_id)}</td><td>${esc(j.role)}${j.duplicate ? " (duplicate)" : ""}</td>
    ${STAGES.map(([s]) => `<td class="n">${ms(j[s + "_ms"])}</td>`).join("")}<td>${esc(j.failure_reason || "")}</td></tr>`;
}

/** One lane per guarantor: a line from its first to its last stage, a marker at each. */
function timeline(journeys, width = 900) {
  if (!journeys.length) return "";
  const lane = 34;
  const pad = { left: 150, right: 16, top: 10, bottom: 26 };
  const height = pad.top + lane * journeys.length + pad.bottom;
  const times = journeys.flatMap((j) => STAGES.map(([s]) => j[s + "_ms"]).filter((t) => t !== null));
  const max = Math.max(1, ...times);
  const x = (t) => pad.left + (Math.max(0, t) / max) * (width - pad.left - pad.right);
  const lanes = journeys
    .map((j, i) => {
      const y = pad.top + lane * i + lane / 2;
      const marks = STAGES.filter(([s]) => j[s + "_ms"] !== null);
      if (!marks.length) return "";
      const first = x(j[marks[0][0] + "_ms"]);
      const last = x(j[marks[marks.length - 1][0] + "_ms"]);
      const dots = marks
        .map(([s, label]) => {
          const cx = x(j[s + "_ms"]).toFixed(1);
          const failed = s === "failed";
          return `<g class="stage${failed ? " failed" : ""}" data-stage="${s}"><circle cx="${cx}" cy="${y}" r="8" fill="${failed ? "var(--bad)" : "var(--accent)"}"/>
            <text x="${cx}" y="${y + 4}" text-anchor="middle" fill="#fff">${label}</text><title>${s}: ${ms(j[s + "_ms"])}</title></g>`;
        })
        .join("");
      return `<g class="lane" data-node="${esc(j.node_id)}"><text x="4" y="${y + 4}">${esc(j.node_id.slice(0, 8))}… ${esc(j.role)}</text>
        <line x1="${first}" y1="${y}" x2="${last}" y2="${y}" stroke="var(--line)" stroke-width="3"/>${dots}</g>`;
    })
    .join("");
  return `<svg class="chart journey" viewBox="0 0 ${width} ${height}" role="img" aria-label="journey of ${journeys.length} guarantors over ${num(max)} ms">
    <text x="${pad.left}" y="${height - 8}">0 ms</text><text x="${width - pad.right}" y="${height - 8}" text-anchor="end">${num(max)} ms</text>
    ${lanes}</svg><p class="muted">S submitted or shared · R received · A authorized · F refined · W work-report built · G guarantee built · D distributed · ✕ failed</p>`;
}
