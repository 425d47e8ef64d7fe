// One implementation's conformance report, per version (`/api/implementations/{name}`): what
// its nodes send and never send, what did not decode, undefined discriminators, refusals and
// clock skew.

import { api, esc, num, failure, skewRanges } from "./lib.js";

function tallies(title, list, id) {
  return `<h3>${esc(title)}</h3>${list.length
    ? `<table id="${id}"><tbody>${list.map((t) => `<tr><td>${esc(t.what)}</td><td class="n">${num(t.count)}</td></tr>`).join("")}</tbody></table>`
    : '<p class="muted">none</p>'}`;
}

function skew(s) {
  const ranges = skewRanges(s);
  if (!ranges) return '<p class="muted">no events timed yet</p>';
  return `<p id="impl-skew" class="${s.absurd ? "bad" : ""}">receive time − event time over ${num(s.events)} events: ${ranges}${s.absurd ? " <b>absurd: a clock or epoch is wrong</b>" : ""}</p>`;
}

export function mount(root, [name]) {
  root.innerHTML = `<p><a href="#/implementations">← Implementations</a></p><section class="panel"><h1>${esc(name)}</h1><p class="muted">Loading…</p></section>`;
  api(`/api/implementations/${encodeURIComponent(name)}`).then(
    (report) => {
      root.innerHTML = `<p><a href="#/implementations">← Implementations</a></p>` + report.versions
        .map((v) => `<section class="panel" data-version="${esc(v.version)}"><h1>${esc(v.name)} <span class="muted">${esc(v.version)}</span></h1>
          <ul class="inline">
            <li>nodes <b>${num(v.nodes_connected)} / ${num(v.nodes_known)}</b></li><li>sessions <b>${num(v.sessions)}</b></li>
            <li>reconnects <b>${num(v.reconnects)}</b></li><li>events stored <b>${num(v.events_stored)}</b></li>
            <li class="${v.decode_failures ? "bad" : ""}">decode failures <b>${num(v.decode_failures)}</b></li>
            <li class="${v.undefined_events ? "bad" : ""}">undefined events <b id="impl-undefined">${num(v.undefined_events)}</b></li>
            <li>dangling references <b>${num(v.dangling_references)}</b></li><li>dropped <b>${num(v.events_dropped)}</b></li>
          </ul>
          <h3>Clock skew</h3>${skew(v.clock_skew)}
          <div class="columns">
            <div><h3>Types sent <span class="muted">${v.types_sent.length}</span></h3><table id="types-sent"><tbody>
              ${v.types_sent.map((t) => `<tr><td>${esc(t.name)} <span class="muted">${t.event_type}</span></td><td class="n">${num(t.count)}</td></tr>`).join("")}</tbody></table></div>
            <div><h3>Never sent <span class="muted" id="never-sent-count">${v.types_never_sent.length}</span></h3>
              <p class="never-sent">${v.types_never_sent.map(esc).join(", ") || '<span class="muted">none: every defined type was sent</span>'}</p>
              ${tallies("Undefined discriminators", v.undefined_discriminators, "impl-undefined-list")}
              ${tallies("Decode failures by error", v.decode_failures_by_error, "impl-errors")}
              ${tallies("Decode failures by claimed type", v.decode_failures_by_claimed_type, "impl-claimed")}
              ${tallies("Refused handshakes by reason", v.refused_handshakes_by_reason, "impl-refused")}</div>
          </div></section>`)
        .join("");
    },
    (e) => {
      root.innerHTML = `<p><a href="#/implementations">← Implementations</a></p>` + failure(name, e);
    },
  );
}
