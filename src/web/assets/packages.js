// Work-packages: the funnel (packages reaching each stage) and its time series, the newest
// packages with their status and furthest stage, the cores and the guarantors
// (`/api/work-packages`, `/api/work-packages/funnel`, `/api/cores`, `/api/cores/status`,
// `/api/guarantees`).

import { api, esc, num, nodeLink, failure, poll, RANGES, pickRange, rangeStart, choices, lineChart, sparkline } from "./lib.js";
import { ms, shortHash } from "./slots.js";

const STAGES = ["received", "authorized", "refined", "report_built", "guarantee_built", "distributed", "failed"];
const STATUSES = ["all", "guaranteed", "failed", "pending"];

export function mount(root, params, query) {
  const range = pickRange(query);
  const status = STATUSES.includes(query.get("status")) ? query.get("status") : "all";
  const href = (r, s) => `#/work-packages?range=${r}&status=${s}`;
  root.innerHTML = `<section class="panel"><h1>Work-packages</h1>
    <p class="table-tools">Range: ${choices(Object.keys(RANGES), range, (r) => href(r, status))}</p>
    <div class="tiles" id="funnel"></div><div id="funnel-chart"></div>
    <p class="muted" id="counted"></p></section>
    <section class="panel"><h2>Newest packages</h2>
    <p class="table-tools">Status: ${choices(STATUSES, status, (s) => href(range, s))}</p>
    <div class="scroll"><table id="package-table"><thead><tr><th>Package</th><th class="n">Core</th><th>Status</th><th>Furthest stage</th>
      <th class="n">Guarantors</th><th class="n">Guarantee built</th><th class="n">Reached validators</th><th>Failure</th></tr></thead><tbody></tbody></table></div></section>
    <div class="columns"><section class="panel"><h2>Cores</h2><div class="scroll"><table id="core-table"><thead><tr><th class="n">Core</th>
      <th class="n">Received</th><th class="n">Refined</th><th class="n">Guaranteed</th><th class="n">Failed</th><th class="n">Refine gas</th><th class="n">Refine time</th><th class="n" title="Mean guarantees per core in the nodes' Status reports, latest bucket, and over the range">Status pool</th><th>Guarantors</th></tr></thead><tbody></tbody></table></div></section>
    <section class="panel"><h2>Guarantors</h2><div class="scroll"><table id="guarantor-table"><thead><tr><th>Node</th><th class="n">Core</th>
      <th class="n">Built</th><th class="n">Sent</th><th class="n">Send failed</th></tr></thead><tbody></tbody></table></div>
      <h2>Receivers</h2><div class="scroll"><table id="receiver-table"><thead><tr><th>Node</th><th class="n">Received</th>
      <th class="n">Receive failed</th><th class="n">Discarded</th></tr></thead><tbody></tbody></table></div></section></div>`;
  const from = () => encodeURIComponent(rangeStart(range));

  async function loadPackages() {
    let list;
    try {
      const filter = status === "all" ? "" : `&status=${status}`;
      list = await api(`/api/work-packages?from=${from()}${filter}`);
    } catch (e) {
      root.querySelector("#funnel").innerHTML = failure("the work-packages", e);
      return;
    }
    root.querySelector("#counted").textContent = `Counted: ${list.counted}.`;
    root.querySelector("#funnel").innerHTML = STAGES.map((s) => `<div class="tile" data-stage="${s}"><h2>${s.replace("_", " ")}</h2>
      <p class="big">${num(list.funnel[s])}</p></div>`).join("");
    root.querySelector("#package-table tbody").innerHTML =
      list.packages.map(packageRow).join("") || `<tr><td class="muted" colspan="8">No work-package in this range.</td></tr>`;
  }

  async function loadFunnel() {
    let series;
    try {
      series = await api(`/api/work-packages/funnel?from=${from()}`);
    } catch (e) {
      root.querySelector("#funnel-chart").innerHTML = failure("the funnel", e);
      return;
    }
    const shown = ["received", "guarantee_built", "failed"];
    root.querySelector("#funnel-chart").innerHTML = lineChart(
      series.buckets.map((b) => Date.parse(b)),
      shown.map((s) => ({ label: s.replace("_", " "), values: series.series[s], total: series.series[s].reduce((a, b) => a + b, 0) })),
    );
  }

  async function loadCores() {
    let cores, guarantees, status;
    try {
      [cores, guarantees, status] = await Promise.all([
        api(`/api/cores?from=${from()}`),
        api(`/api/guarantees?from=${from()}`),
        api(`/api/cores/status?from=${from()}`),
      ]);
    } catch (e) {
      root.querySelector("#core-table tbody").innerHTML = `<tr><td colspan="9">${failure("the cores", e)}</td></tr>`;
      return;
    }
    const pools = new Map(status.cores.map((c) => [c.core, c.mean_guarantees.filter((m) => m !== null)]));
    const pool = (core) => {
      const means = pools.get(core) || [];
      return means.length ? `<span class="pool">${num(means[means.length - 1], 2)}</span> ${sparkline(means, 80, 20)}` : "–";
    };
    root.querySelector("#core-table tbody").innerHTML = cores.cores
      .map((c) => `<tr data-core="${c.core}"><td class="n">${c.core}</td><td class="n">${num(c.packages.received)}</td>
        <td class="n">${num(c.packages.refined)}</td><td class="n">${num(c.packages.guarantee_built)}</td>
        <td class="n failed">${num(c.packages.failed)}</td><td class="n">${num(c.mean_refine_gas)}</td><td class="n">${ms(c.mean_refine_ms)}</td>
        <td class="n">${pool(c.core)}</td><td>${c.top_guarantors.map(nodeLink).join(" ")}${c.guarantors > c.top_guarantors.length ? ` and ${num(c.guarantors - c.top_guarantors.length)} more` : ""}</td></tr>`)
      .join("");
    root.querySelector("#guarantor-table tbody").innerHTML = guarantees.guarantors
      .map((g) => `<tr data-node="${esc(g.node_id)}" data-core="${g.core}"${g.built && !g.sent && !g.send_failed ? ' class="silent"' : ""}>
        <td>${nodeLink(g.node_id)}</td><td class="n">${g.core}</td><td class="n built">${num(g.built)}</td>
        <td class="n sent">${num(g.sent)}</td><td class="n">${num(g.send_failed)}</td></tr>`)
      .join("");
    root.querySelector("#receiver-table tbody").innerHTML = guarantees.receivers
      .map((r) => `<tr data-node="${esc(r.node_id)}"><td>${nodeLink(r.node_id)}</td><td class="n">${num(r.received)}</td>
        <td class="n">${num(r.receive_failed)}</td><td class="n">${num(r.discarded)}</td></tr>`)
      .join("");
  }

  const stops = [poll(5_000, loadPackages), poll(15_000, loadFunnel), poll(15_000, loadCores)];
  return () => stops.forEach((stop) => stop());
}

function packageRow(p) {
  const statusClass = p.status === "guaranteed" ? "ok" : p.status === "in progress" ? "muted" : "bad";
  return `<tr data-package="${esc(p.hash)}"><td><a href="#/work-package/${esc(p.hash)}">${shortHash(p.hash)}</a></td><td class="n">${p.core}</td>
    <td class="${statusClass} status">${esc(p.status)}</td><td>${esc((p.furthest_stage || "–").replace("_", " "))}</td>
    <td class="n">${num(p.nodes)}</td><td class="n">${ms(p.guarantee_built_ms)}</td>
    <td class="n">${p.guarantee_receivers ? `${num(p.guarantee_receivers)} in ${ms(p.guarantee_reach_ms)}` : "–"}</td>
    <td>${esc(p.failure_reason || "")}</td></tr>`;
}
