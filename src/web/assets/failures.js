// Failures over a range: each failure type with its attempts and rate, the nodes failing most
// and the reasons they gave (`/api/failures`).

import { api, esc, num, percent, nodeLink, failure, poll, RANGES, pickRange, rangeStart, choices } from "./lib.js";

export function mount(root, params, query) {
  const range = pickRange(query);
  root.innerHTML = `<section class="panel"><h1>Failures</h1>
    <p class="table-tools">Range: ${choices(Object.keys(RANGES), range, (r) => `#/failures?range=${r}`)} <span class="muted" id="failures-range"></span></p>
    <div id="failures-list"><p class="muted">Loading…</p></div></section>`;
  const list = root.querySelector("#failures-list");

  async function load() {
    const from = rangeStart(range);
    let report;
    try {
      report = await api(`/api/failures?from=${encodeURIComponent(from)}`);
    } catch (e) {
      list.innerHTML = failure("the failures", e);
      return;
    }
    root.querySelector("#failures-range").textContent = `${report.from} to ${report.to}; counted ${report.counted}`;
    if (!report.failures.length) {
      list.innerHTML = `<p class="muted">No failure events in this range.</p>`;
      return;
    }
    list.innerHTML = report.failures
      .map((f) => `<article class="failure" data-failure="${esc(f.name)}">
        <h2>${esc(f.name)} <span class="muted">${esc(f.event_type)}</span></h2>
        <ul class="inline">
          <li>events <b class="count">${num(f.count)}</b></li>
          <li>attempts <b>${num(f.attempts)}</b> <span class="muted">${esc(f.answers.join(", ") || "none answered")}</span></li>
          <li>rate <b class="rate">${percent(f.rate)}</b></li>
          <li>nodes failing <b>${num(f.nodes_failing)}</b></li>
        </ul>
        <div class="columns">
          <table><thead><tr><th>Node</th><th>Failures</th><th>Attempts</th><th>Rate</th></tr></thead><tbody>
          ${f.nodes.map((n) => `<tr data-node="${esc(n.node_id)}"><td>${nodeLink(n.node_id)}</td><td class="n">${num(n.count)}</td><td class="n">${num(n.attempts)}</td><td class="n rate">${percent(n.rate)}</td></tr>`).join("")}
          </tbody></table>
          <table><thead><tr><th>Reason</th><th>Events</th></tr></thead><tbody>
          ${f.reasons.map((r) => `<tr><td>${esc(r.reason)}</td><td class="n">${num(r.count)}</td></tr>`).join("") || '<tr><td class="muted" colspan="2">no reasons given</td></tr>'}
          </tbody></table>
        </div></article>`)
      .join("");
  }

  return poll(15_000, load);
}
