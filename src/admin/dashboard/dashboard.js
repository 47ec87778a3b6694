// The dashboard: asks the admin endpoint for the live figures (`/debug/traffic`, the same as
// `switchyard top -o json`) and the spec's state (`/debug/config`) every second and redraws. Everything it
// shows comes from proxies and spec files, so it only ever sets text (`textContent`), never markup.
"use strict";

const EVERY_MS = 1000;

// An element: `el("span", {class: "x", data: {subset: "v1"}}, child, "text", ...)`.
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "data") {
      for (const [name, v] of Object.entries(value)) node.dataset[name] = String(v);
    } else if (key === "text") {
      node.textContent = String(value);
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const percent = (f) => (f === null || f === undefined ? "–" : `${Math.round(f * 100)}%`);
const rate = (rps) => (rps >= 10 ? rps.toFixed(0) : rps.toFixed(1));
const shortName = (host) => host.split(".")[0];

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${(await response.text()).trim()}`);
  return response.json();
}

// Rows of `services` grouped by service, in the order given (the server sorts them).
function byService(rows) {
  const services = new Map();
  for (const row of rows) {
    if (!services.has(row.service)) services.set(row.service, []);
    services.get(row.service).push(row);
  }
  return services;
}

// One service: its box, and under it an edge to each subset whose bar is the subset's share of the
// service's requests and whose red end is the part of that share that failed.
function serviceCard(host, rows) {
  const total = rows.reduce((sum, r) => sum + r.requests, 0);
  const totalRps = rows.reduce((sum, r) => sum + r.rps, 0);
  const failed = rows.some((r) => r.success_rate !== null && r.success_rate < 1);
  const card = el("article", { class: failed ? "service failing" : "service", data: { service: host } });
  card.append(
    el(
      "div",
      { class: "node service-node" },
      el("span", { class: "name", text: shortName(host) }),
      el("span", { class: "rate", text: total > 0 ? `${rate(totalRps)} req/s` : "idle" }),
      el("span", { class: "host", text: host })
    )
  );
  const edges = el("ul", { class: "edges" });
  for (const row of rows) {
    const share = row.share === null ? 0 : row.share;
    const errorRate = row.success_rate === null ? 0 : 1 - row.success_rate;
    const fill = el("span", { class: "fill" }, el("span", { class: "failed" }));
    fill.style.width = `${share * 100}%`;
    fill.firstChild.style.width = `${errorRate * 100}%`;
    const edge = el(
      "li",
      {
        class: row.requests > 0 ? "edge" : "edge idle",
        data: { service: row.service, subset: row.subset, requests: row.requests },
      },
      el("span", { class: "node subset", text: row.subset === "-" ? "(all)" : row.subset }),
      el("span", { class: "bar", role: "img", "aria-label": `${percent(row.share)} of ${shortName(host)}` }, fill),
      el("span", { class: "share", text: percent(row.share) }),
      el(
        "span",
        { class: "figures" },
        el("span", { class: "requests", text: row.requests }),
        " requests · ",
        el("span", { class: "rps", text: rate(row.rps) }),
        " req/s · ",
        el("span", {
          class: errorRate > 0 ? "errors bad" : "errors",
          text: row.success_rate === null ? "no answers" : `${percent(errorRate)} errors`,
        })
      )
    );
    // The edge's thickness follows the share, so the split reads at a glance.
    edge.style.setProperty("--share", String(share));
    edges.append(edge);
  }
  card.append(edges);
  return card;
}

function renderTraffic(traffic) {
  document.getElementById("window").textContent =
    traffic.window_seconds > 0 ? `last ${traffic.window_seconds.toFixed(0)} s` : "";
  const services = document.getElementById("services");
  if (traffic.window_seconds <= 0) {
    services.replaceChildren(el("p", { class: "muted", text: "Reading the Envoys; figures in a moment…" }));
  } else if (traffic.services.length === 0) {
    services.replaceChildren(el("p", { class: "muted", text: "No requests between services in the window." }));
  } else {
    const cards = [];
    for (const [host, rows] of byService(traffic.services)) cards.push(serviceCard(host, rows));
    services.replaceChildren(...cards);
  }

  // Aborted calls reach no cluster, so they show here, counted by the proxies that injected them.
  const faults = document.getElementById("faults");
  const injected = [];
  for (const p of traffic.proxies) {
    if (p.aborts_injected > 0) injected.push(`${p.aborts_injected} aborts by ${p.proxy}`);
    if (p.delays_injected > 0) injected.push(`${p.delays_injected} delays by ${p.proxy}`);
  }
  faults.textContent = injected.length > 0 ? `Faults injected in the window: ${injected.join(", ")}.` : "";
  faults.hidden = injected.length === 0;

  const body = document.querySelector("#proxies tbody");
  const rows = traffic.proxies.map((p) => {
    const snapshot = el("a", { href: `/debug/snapshot?proxy=${encodeURIComponent(p.proxy)}`, text: p.proxy });
    const admin = p.envoy_admin === null ? "–" : p.reachable ? p.envoy_admin : `${p.envoy_admin} (not answering)`;
    const count = (n) => el("td", { class: n > 0 ? "num fault" : "num", text: n });
    return el(
      "tr",
      { data: { proxy: p.proxy, sync: p.sync } },
      el("td", {}, snapshot),
      el("td", {}, el("span", { class: `pill ${p.sync.toLowerCase().replace(" ", "-")}`, text: p.sync })),
      el("td", { class: p.reachable ? "" : "muted", text: admin }),
      count(p.aborts_injected),
      count(p.delays_injected)
    );
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No proxy is connected." })));
  body.replaceChildren(...rows);
}

function where(d) {
  const resource = d.resource ? ` ${d.resource.kind} ${d.resource.namespace}/${d.resource.name}` : "";
  return `${d.file}:${d.line}${resource}`;
}

// One diagnostic as `validate` prints it: severity, code, file:line and resource, field path, message.
function diagnostic(d) {
  return el(
    "li",
    { class: d.severity === "Error" ? "error" : "warning", data: { code: d.code } },
    el("span", { class: "severity", text: d.severity }),
    el("code", { class: "code", text: d.code }),
    el("span", { class: "where", text: where(d) }),
    d.field ? el("code", { class: "field", text: d.field }) : "",
    el("span", { class: "message", text: d.message })
  );
}

function renderConfig(config) {
  const summary = document.getElementById("config-summary");
  const rejected = document.getElementById("rejected");
  const served = config.accepted_revision;
  const current = served !== null && served === config.revision;
  const dir = config.spec_dir ? ` of ${config.spec_dir}` : "";
  if (served === null) {
    summary.textContent = `No valid configuration yet${dir}.`;
  } else {
    summary.textContent = `Serving revision ${served}${dir}` + (config.accepted_at ? `, accepted ${config.accepted_at}.` : ".");
  }
  if (current) {
    rejected.hidden = true;
    rejected.replaceChildren();
  } else {
    const keeps = served === null ? "proxies get nothing until a reading is valid" : `proxies keep revision ${served}`;
    const why = el("ul", { class: "diagnostics" });
    for (const d of config.errors) why.append(diagnostic(d));
    rejected.replaceChildren(
      el(
        "p",
        {},
        el("strong", { text: `Revision ${config.revision} REJECTED` }),
        ` (${config.errors.length} error${config.errors.length === 1 ? "" : "s"}): ${keeps}.`
      ),
      why
    );
    rejected.hidden = false;
  }

  const diagnostics = [...config.errors, ...config.warnings];
  const box = document.getElementById("diagnostics");
  if (diagnostics.length === 0) {
    box.replaceChildren(el("p", { class: "muted", text: `No errors or warnings in revision ${config.revision}.` }));
    return;
  }
  const list = el("ul", { class: "diagnostics" });
  for (const d of diagnostics) list.append(diagnostic(d));
  box.replaceChildren(el("p", { text: `Revision ${config.revision}:` }), list);
}

async function refresh() {
  const live = document.getElementById("live");
  try {
    const [traffic, config] = await Promise.all([getJson("/debug/traffic"), getJson("/debug/config")]);
    renderTraffic(traffic);
    renderConfig(config);
    live.dataset.state = "live";
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    live.dataset.state = "error";
    live.textContent = `not updating: ${error.message}`;
  } finally {
    setTimeout(refresh, EVERY_MS);
  }
}

refresh();
