// The router. A view is a module exporting `mount(root, params, query)`, which draws into
// `root` and returns a function that stops its timers and sockets; adding a view is one module
// and one line below. Routes are hashes (`#/node/<id>?type=…`), so the server serves one page.

import { showApiState } from "./lib.js";

const ROUTES = [
  { path: /^\/$/, nav: "Network", href: "#/", view: () => import("./network.js") },
  { path: /^\/live$/, nav: "Live", href: "#/live", view: () => import("./live.js") },
  { path: /^\/failures$/, nav: "Failures", href: "#/failures", view: () => import("./failures.js") },
  { path: /^\/implementations$/, nav: "Implementations", href: "#/implementations", view: () => import("./implementations.js") },
  { path: /^\/timeseries$/, nav: "Time series", href: "#/timeseries", view: () => import("./timeseries.js") },
  { path: /^\/slots$/, nav: "Blocks", href: "#/slots", view: () => import("./slots.js") },
  { path: /^\/slot\/(\d+)$/, view: () => import("./slot.js") },
  { path: /^\/work-packages$/, nav: "Work-packages", href: "#/work-packages", view: () => import("./packages.js") },
  { path: /^\/work-package\/(0x[0-9a-fA-F]{64})$/, view: () => import("./package.js") },
  { path: /^\/peers$/, nav: "Peers", href: "#/peers", view: () => import("./peers.js") },
  { path: /^\/implementations\/(.+)$/, view: () => import("./implementation.js") },
  { path: /^\/node\/([0-9a-fA-F]{64})$/, view: () => import("./node.js") },
  { path: /^\/event\/(\d+)$/, view: () => import("./event.js") },
];

let unmount = null;
/** Which navigation is newest, so a slow module load does not draw over a later one. */
let shown = 0;

function drawNav(current) {
  document.getElementById("nav").innerHTML = ROUTES.filter((r) => r.nav)
    .map((r) => `<a href="${r.href}"${r === current ? ' aria-current="page"' : ""}>${r.nav}</a>`)
    .join("");
}

async function show() {
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const route = ROUTES.find((r) => r.path.test(path));
  const root = document.getElementById("view");
  if (unmount) {
    unmount();
    unmount = null;
  }
  drawNav(route);
  if (!route) {
    root.innerHTML = `<p class="bad">No such page: ${path.replace(/[<>&]/g, "")}</p><p><a href="#/">The network</a></p>`;
    return;
  }
  const params = path.match(route.path).slice(1).map(decodeURIComponent);
  const turn = ++shown;
  const module = await route.view();
  if (turn !== shown) return;
  root.innerHTML = "";
  unmount = module.mount(root, params, new URLSearchParams(search || "")) || null;
}

window.addEventListener("hashchange", show);
showApiState(true, "API connected");
show();
