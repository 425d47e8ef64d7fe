// Events over time per type, node or implementation (`/api/timeseries`), the largest series
// drawn and the rest summed as "others".

import { api, lineChart, shortId, failure, poll, RANGES, pickRange, rangeStart, choices } from "./lib.js";

const GROUPS = ["type", "implementation", "node"];
const DRAWN = 8;

export function mount(root, params, query) {
  const range = pickRange(query);
  const group = GROUPS.includes(query.get("group_by")) ? query.get("group_by") : "type";
  const link = (r, g) => `#/timeseries?range=${r}&group_by=${g}`;
  root.innerHTML = `<section class="panel"><h1>Events over time</h1>
    <p class="table-tools">By ${choices(GROUPS, group, (g) => link(range, g))}
    &nbsp; Range ${choices(Object.keys(RANGES), range, (r) => link(r, group))}
    <span class="muted" id="series-tier"></span></p><div id="series-chart"><p class="muted">Loading…</p></div></section>`;
  const box = root.querySelector("#series-chart");

  async function load() {
    const from = rangeStart(range);
    let body;
    try {
      body = await api(`/api/timeseries?group_by=${group}&from=${encodeURIComponent(from)}`);
    } catch (e) {
      box.innerHTML = failure("the time series", e);
      return;
    }
    const label = (s) => (group === "node" ? shortId(s.key) : group === "type" ? `${s.name} (${s.key})` : s.key);
    const series = body.series.slice(0, DRAWN).map((s) => ({ label: label(s), values: s.values, total: s.total }));
    const rest = body.series.slice(DRAWN);
    if (rest.length) {
      series.push({
        label: `${rest.length} others`,
        values: body.buckets.map((_, i) => rest.reduce((sum, s) => sum + s.values[i], 0)),
        total: rest.reduce((sum, s) => sum + s.total, 0),
      });
    }
    root.querySelector("#series-tier").textContent = `${body.tier} tier, a point every ${body.step_seconds} s, counted ${body.counted}`;
    box.innerHTML = lineChart(body.buckets.map((b) => Date.parse(b)), series);
  }
  return poll(30_000, load);
}
