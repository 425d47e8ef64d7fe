// What every view shares: API calls (with the token when one is set), polling, formatting,
// escaping and small SVG charts. No framework: views write HTML strings through `esc`.

const TOKEN_KEY = "tart.token";

/** The API token this browser was given (empty when the API is open). */
export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

/** A failed API call: `status` 0 when the server could not be reached at all. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const apiState = { reachable: true };

/** The header's indicator of whether the API answers. */
export function showApiState(ok, text) {
  apiState.reachable = ok;
  const el = document.getElementById("api-state");
  if (!el) return;
  el.textContent = text;
  el.className = "state " + (ok ? "ok" : "bad");
}

/** GET `path` as JSON. A 401 asks for the token; an unreachable server is shown in the header. */
export async function api(path) {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch (e) {
    showApiState(false, "API unreachable, retrying");
    throw new ApiError(0, "the API could not be reached");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (response.status === 401) {
    askForToken();
  }
  if (!response.ok) {
    if (response.status >= 500) showApiState(false, "API error " + response.status);
    throw new ApiError(response.status, (body && body.error) || response.statusText);
  }
  if (!apiState.reachable) showApiState(true, "API connected");
  return body;
}

function askForToken() {
  if (document.getElementById("token-form")) return;
  const form = document.createElement("form");
  form.id = "token-form";
  form.className = "panel token";
  form.innerHTML = `<label>This TART needs its API token:
    <input type="password" name="token" autocomplete="off" required></label>
    <button type="submit">Use it</button>`;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(TOKEN_KEY, form.token.value.trim());
    location.reload();
  });
  document.body.prepend(form);
  form.token.focus();
}

/** The URL of a WebSocket path on this server, with the token (a browser cannot set headers). */
export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token() ? "?token=" + encodeURIComponent(token()) : "";
  return `${scheme}//${location.host}${path}${query}`;
}

/**
 * Runs `task` now and every `ms` after it finished (never two at once), skipping turns while
 * the tab is hidden. Returns the function that stops it.
 */
export function poll(ms, task) {
  let stopped = false;
  let timer = null;
  const turn = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await task();
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
      }
    }
    if (!stopped) timer = setTimeout(turn, ms);
  };
  turn();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe for HTML: node-sent strings (implementation names, reasons) are untrusted. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** One formatter per number of decimals: `toLocaleString` builds a new one on every call. */
const FORMATS = new Map();

export function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  let format = FORMATS.get(digits);
  if (!format) {
    format = new Intl.NumberFormat("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
    FORMATS.set(digits, format);
  }
  return format.format(n);
}

export function percent(rate) {
  return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + "%";
}

/** "12 s ago" from an RFC 3339 time. */
export function ago(time, now = Date.now()) {
  if (!time) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(time)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

export function shortId(id) {
  return id ? id.slice(0, 8) + "…" + id.slice(-4) : "";
}

export function nodeLink(id) {
  return `<a href="#/node/${esc(id)}" title="${esc(id)}" class="mono">${esc(shortId(id))}</a>`;
}

/** The error message of a view that could not load its data, as HTML. */
export function failure(what, e) {
  return `<p class="bad">Could not load ${esc(what)}: ${esc(e.message)}</p>`;
}

/** A clock skew's p50 and p99 as the ranges of their buckets; null before any event was timed. */
export function skewRanges(skew) {
  if (!skew || !skew.p50_ms) return null;
  const range = ([a, b]) => `${num(a)}…${num(b)} ms`;
  return `p50 ${range(skew.p50_ms)}, p99 ${range(skew.p99_ms)}`;
}

/** The ranges a view can look back over, in hours. */
export const RANGES = { "1h": 1, "6h": 6, "24h": 24, "7d": 168 };

/** The range named in `query` (`?range=`), or the last hour. */
export function pickRange(query) {
  return RANGES[query.get("range")] ? query.get("range") : "1h";
}

/** Where `range` starts, from now, as RFC 3339 for the API. */
export function rangeStart(range) {
  return new Date(Date.now() - RANGES[range] * 3600_000).toISOString();
}

/** Links to each of `options` (the `current` one in bold, not a link), `href(option)` each. */
export function choices(options, current, href) {
  return options.map((o) => (o === current ? `<b>${esc(o)}</b>` : `<a href="${href(o)}">${esc(o)}</a>`)).join(" · ");
}

/** A small line of `values` as an SVG. */
export function sparkline(values, width = 160, height = 32) {
  if (!values.length) return "";
  const max = Math.max(...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`)
    .join(" ");
  return `<svg class="spark" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}"
    role="img" aria-label="last ${values.length} values, peak ${num(max)}">
    <polyline points="${points}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>`;
}

const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];

/** Lines of several series over shared buckets (times in ms), with axes and a legend. */
export function lineChart(buckets, series, { width = 900, height = 260 } = {}) {
  if (!buckets.length || !series.length) return `<p class="muted">No data in this range.</p>`;
  const pad = { left: 56, right: 8, top: 8, bottom: 24 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (i) => pad.left + (buckets.length > 1 ? (i / (buckets.length - 1)) * w : 0);
  const y = (v) => pad.top + h - (v / max) * h;
  const lines = series
    .map((s, k) => {
      const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      return `<polyline points="${points}" fill="none" stroke="${PALETTE[k % PALETTE.length]}" stroke-width="1.5"/>`;
    })
    .join("");
  const time = (ms) => new Date(ms).toISOString().slice(11, 16);
  const axes = `<line x1="${pad.left}" y1="${pad.top + h}" x2="${pad.left + w}" y2="${pad.top + h}" class="axis"/>
    <text x="${pad.left - 4}" y="${pad.top + 10}" text-anchor="end">${num(max)}</text>
    <text x="${pad.left - 4}" y="${pad.top + h}" text-anchor="end">0</text>
    <text x="${pad.left}" y="${height - 6}">${time(buckets[0])}</text>
    <text x="${pad.left + w}" y="${height - 6}" text-anchor="end">${time(buckets[buckets.length - 1])} UTC</text>`;
  const legend = series
    .map((s, k) => `<li><span class="swatch" style="background:${PALETTE[k % PALETTE.length]}"></span>${esc(s.label)} <span class="muted">${num(s.total)}</span></li>`)
    .join("");
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="chart">${axes}${lines}</svg>
    <ul class="legend">${legend}</ul>`;
}
