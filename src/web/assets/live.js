// The live stream over the WebSocket: events as they arrive, filtered by node (on the server)
// and type (here), with pause. The client reconnects with a growing delay and shows its state.
// Rendering is throttled and bounded: whatever the rate, the page keeps at most KEPT events and
// draws at most every DRAW_EVERY_MS, so thousands of events a second neither freeze the page
// nor grow its memory.

import { esc, nodeLink, num, wsUrl } from "./lib.js";
import { summary } from "./events.js";

const KEPT = 200;
const DRAW_EVERY_MS = 250;
const RETRY_MS = [500, 1000, 2000, 5000, 10000];

/** A type filter (`BestBlockChanged, 10`) as a test of an event; null: every type. */
function typeTest(text) {
  const wanted = text.split(",").map((w) => w.trim().toLowerCase()).filter(Boolean);
  if (!wanted.length) return null;
  return (e) => wanted.includes(String(e.event_type)) || wanted.includes(String(e.event_name).toLowerCase());
}

export function mount(root, params, query) {
  root.innerHTML = `<section class="panel">
      <div class="table-tools">
        <span id="live-state" class="state" role="status">connecting…</span>
        <label>Node <input id="live-node" placeholder="64 hex digits (all nodes when empty)" size="30" value="${esc(query.get("node") || "")}"></label>
        <label>Types <input id="live-type" placeholder="e.g. Status, 11" value="${esc(query.get("type") || "")}"></label>
        <button type="button" id="live-pause" aria-pressed="false">Pause</button>
        <span id="live-rate" class="muted"></span>
      </div>
      <div class="scroll tall"><table class="events" id="live-table"><thead><tr><th>Row</th><th>Node</th><th>Event ID</th><th>Type</th><th>Time</th><th>Latency</th><th>Fields</th></tr></thead><tbody></tbody></table></div>
    </section>`;
  const state = root.querySelector("#live-state");
  const tbody = root.querySelector("#live-table tbody");
  const nodeInput = root.querySelector("#live-node");
  const typeInput = root.querySelector("#live-type");
  const pauseButton = root.querySelector("#live-pause");
  let kept = [];
  let matches = typeTest(typeInput.value);
  let paused = false;
  let dirty = false;
  let received = 0;
  let receivedAtLastTick = 0;
  let socket = null;
  let retry = 0;
  let retryTimer = null;
  let closed = false;

  function setState(text, kind) {
    state.textContent = text;
    state.className = "state " + kind;
    state.dataset.state = kind;
  }

  function keep(events) {
    for (const e of events) {
      received++;
      if (matches && !matches(e)) continue;
      kept.push(e);
    }
    if (kept.length > KEPT) kept = kept.slice(-KEPT);
    dirty = true;
  }

  function draw() {
    if (!dirty || paused) return;
    dirty = false;
    tbody.innerHTML = kept
      .slice()
      .reverse()
      .map((e) => `<tr><td><a href="#/event/${e.id}">${e.id}</a></td><td>${nodeLink(e.node_id)}</td><td class="n">${esc(e.event_id)}</td>
        <td>${esc(e.event_name)}</td><td class="mono">${esc(e.timestamp)}</td><td class="n">${e.latency_ms === undefined ? "" : num(e.latency_ms, 1) + " ms"}</td>
        <td class="mono json">${esc(summary(e, 120))}</td></tr>`)
      .join("");
  }

  function subscribe() {
    const node = nodeInput.value.trim().toLowerCase();
    const filter = /^[0-9a-f]{64}$/.test(node) ? { type: "Node", node_id: node } : { type: "All" };
    socket.send(JSON.stringify({ type: "Subscribe", filter }));
    socket.send(JSON.stringify({ type: "GetRecentEvents", limit: KEPT }));
  }

  function connect() {
    setState(retry ? "reconnecting…" : "connecting…", "wait");
    socket = new WebSocket(wsUrl("/api/ws"));
    socket.onopen = () => {
      retry = 0;
      setState("connected", "ok");
      subscribe();
    };
    socket.onmessage = (message) => {
      const m = JSON.parse(message.data);
      if (m.type === "event") keep([m.data]);
      else if (m.type === "recent_events") {
        kept = [];
        keep(m.data.events);
      }
    };
    socket.onclose = (e) => {
      if (closed) return;
      const delay = RETRY_MS[Math.min(retry, RETRY_MS.length - 1)];
      retry++;
      const why = e.code === 1008 ? "too slow for the stream" : "disconnected";
      setState(`${why}; reconnecting in ${(delay / 1000).toFixed(1)} s`, "bad");
      retryTimer = setTimeout(connect, delay);
    };
  }

  nodeInput.addEventListener("change", () => {
    if (socket && socket.readyState === WebSocket.OPEN) subscribe();
  });
  // "change" too: clearing a field by script (or WebDriver) sends no "input".
  for (const kind of ["input", "change"]) {
    typeInput.addEventListener(kind, () => {
      matches = typeTest(typeInput.value);
      kept = matches ? kept.filter(matches) : kept;
      dirty = true;
    });
  }
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    dirty = true;
  });

  const drawTimer = setInterval(draw, DRAW_EVERY_MS);
  const rateTimer = setInterval(() => {
    root.querySelector("#live-rate").textContent = `${num(received - receivedAtLastTick)} events/s received · ${num(received)} in all${paused ? " · paused" : ""}`;
    receivedAtLastTick = received;
  }, 1000);
  connect();
  return () => {
    closed = true;
    clearInterval(drawTimer);
    clearInterval(rateTimer);
    clearTimeout(retryTimer);
    socket?.close();
  };
}
