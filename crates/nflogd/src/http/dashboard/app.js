// nflogd's dashboard: plain DOM and SVG, no library, everything from this server's /api/.
"use strict";

const $ = (s) => document.querySelector(s);
const state = { status: null, store: false, last: new Map(), lastAt: 0, tail: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path) {
  const r = await fetch("api/" + path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fill(tbody, rows, emptyText, cols) {
  const b = typeof tbody === "string" ? $(tbody + " tbody") : tbody;
  b.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols || 4 }, emptyText))]));
}

function num(n) { return Number(n || 0).toLocaleString("en-US"); }
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; n = Number(n || 0);
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function duration(s) {
  s = Number(s || 0);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}
// FNV-1a: prefixes that differ by a letter get far-apart colours.
function hue(text) { let h = 2166136261; for (const c of text) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0; return h % 360; }
function prefixTag(p) {
  p = (p || "").trim();
  return p ? el("span", { class: "tag", style: `background:hsl(${hue(p)},65%,68%)` }, p) : "";
}
function actionTag(a) { return a ? el("span", { class: "act act-" + a }, a) : el("span", { class: "muted" }, "–"); }
function endpoint(ip, port) { return ip ? (port != null ? (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`) : ip) : "–"; }
function range() { return $("#range").value; }
function barCell(n, max, cls) {
  return el("td", { class: "barcell" }, el("div", { class: "bar " + (cls || ""), style: `width:${max ? Math.max(1, 100 * n / max) : 0}%` }));
}

// ---- over time ----

async function timeline() {
  const t = await api(`timeline?since=${range()}`);
  $("#source-note").textContent = t.from === "live" ? "no store: live counts since start" : "";
  const W = 1000, H = 190, L = 46, B = 20, T = 10;
  const step = t.step_seconds * 1000;
  const start = Math.floor(Date.parse(t.since) / step) * step;
  const end = t.until ? Date.parse(t.until) : Date.now();
  const n = Math.max(1, Math.ceil((end - start) / step));
  const by = new Map(t.buckets.map((b) => [Date.parse(b.time), b]));
  let max = 1;
  const cols = [];
  for (let i = 0; i < n; i++) {
    const b = by.get(start + i * step) || {};
    const parts = [["drop", b.drop || 0], ["reject", b.reject || 0], ["accept", b.accept || 0], ["other", b.other || 0]];
    max = Math.max(max, parts.reduce((a, p) => a + p[1], 0));
    cols.push([start + i * step, parts]);
  }
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "packets over time" });
  for (let g = 0; g <= 4; g++) {
    const y = T + (H - B - T) * (1 - g / 4);
    s.append(svg("line", { class: "grid", x1: L, x2: W, y1: y, y2: y }));
    s.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, num(Math.round(max * g / 4))));
  }
  const w = (W - L) / n;
  const colour = { drop: "var(--drop)", reject: "var(--reject)", accept: "var(--accept)", other: "var(--other)" };
  cols.forEach(([time, parts], i) => {
    let y = H - B;
    for (const [name, v] of parts) {
      if (!v) continue;
      const h = (H - B - T) * v / max;
      y -= h;
      const r = svg("rect", { x: L + i * w + 0.5, y, width: Math.max(1, w - 1), height: h, fill: colour[name], "data-action": name, "data-count": v });
      r.append(svg("title", {}, `${new Date(time).toISOString().slice(0, 16).replace("T", " ")} UTC: ${num(v)} ${name}`));
      s.append(r);
    }
  });
  const labels = Math.min(n, 8);
  for (let k = 0; k < labels; k++) {
    const i = Math.floor(k * n / labels);
    const d = new Date(cols[i][0]);
    const text = step >= 86400000 ? d.toISOString().slice(5, 10) : d.toISOString().slice(11, 16);
    s.append(svg("text", { x: L + i * w, y: H - 4 }, text));
  }
  $("#timeline").replaceChildren(s);
}

// ---- summaries ----

async function topSources() {
  const action = $("#sources-action").value;
  let rows;
  if (state.store) {
    rows = (await api(`top/sources?since=${range()}&limit=10${action ? "&action=" + action : ""}`)).rows
      .map((r) => ({ key: r.src_ip, n: r.packets }));
  } else {
    rows = (await api(`live/top?by=sources&limit=10${action ? "&action=" + action : ""}`)).rows
      .map((r) => ({ key: r.key, n: r.packets }));
  }
  const max = Math.max(1, ...rows.map((r) => r.n));
  fill("#top-sources", rows.map((r) => el("tr", { "data-key": r.key || "" },
    el("td", {}, r.key || "(no address)"), el("td", { class: "n" }, num(r.n)), barCell(r.n, max, action === "accept" ? "accept" : ""))),
    "nothing logged in this range", 3);
}

async function topPorts() {
  let rows;
  if (state.store) {
    rows = (await api(`top/dropped-ports?since=${range()}&limit=10`)).rows
      .map((r) => ({ port: r.dst_port, proto: protoName(r.protocol), n: r.packets }));
  } else {
    rows = (await api("live/top?by=ports&action=drop,reject&limit=10")).rows
      .map((r) => { const [port, proto] = r.key.split("/"); return { port, proto, n: r.packets }; });
  }
  const max = Math.max(1, ...rows.map((r) => r.n));
  fill("#top-ports", rows.map((r) => el("tr", { "data-key": String(r.port ?? "") },
    el("td", {}, r.port ?? "–"), el("td", {}, r.proto), el("td", { class: "n" }, num(r.n)), barCell(r.n, max))),
    "no drops in this range", 4);
}

const PROTOS = { 1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 47: "gre", 50: "esp", 51: "ah", 136: "udplite", 33: "dccp" };
function protoName(p) { return PROTOS[p] || (p == null ? "–" : String(p)); }

async function flows() {
  if (!state.store) {
    fill("#talkers", [], "needs a store (a sqlite or postgres sink with conntrack events)", 3);
    fill("#longest", [], "needs a store", 3);
    return;
  }
  const t = (await api(`top/talkers?since=${range()}&limit=10`)).rows;
  fill("#talkers", t.map((r) => el("tr", {}, el("td", {}, r.src_ip), el("td", { class: "n" }, bytes(r.bytes)), el("td", { class: "n" }, num(r.flows)))),
    "no ended connections in this range", 3);
  const l = (await api(`top/longest-flows?since=${range()}&limit=10`)).rows;
  fill("#longest", l.map((r) => el("tr", {},
    el("td", { title: r.nat_src_ip ? "left as " + r.nat_src_ip : "" }, `${protoName(r.protocol)} ${endpoint(r.src_ip, r.src_port)} → ${endpoint(r.dst_ip, r.dst_port)}`),
    el("td", { class: "n" }, duration(r.seconds)), el("td", { class: "n" }, bytes(r.bytes)))),
    "no ended connections in this range", 3);
}

// ---- components ----

async function health() {
  const comps = await api("components");
  const now = Date.now();
  const dt = state.lastAt ? (now - state.lastAt) / 1000 : 0;
  const rows = comps.map((c) => {
    const k = c.kind + "." + c.name, x = c.counters;
    const moved = c.kind === "sink" ? x.sent : x.received;
    const before = state.last.get(k);
    const rate = before && dt > 0 ? Math.max(0, (moved - before.moved) / dt) : null;
    const newDrops = before ? x.dropped - before.dropped : 0;
    state.last.set(k, { moved, dropped: x.dropped });
    let st = ["ok", "state-ok"];
    if (x.spool_pending > 0 || x.queued > 1000) st = ["behind", "state-warn"];
    if (newDrops > 0 || x.kernel_lost > 0 && before && x.kernel_lost > (before.kernel_lost || 0)) st = ["dropping", "state-bad"];
    if (x.errors > 0 && c.kind === "sink" && x.spool_pending > 0) st = ["failing, spooling", "state-bad"];
    return el("tr", { "data-component": k },
      el("td", {}, el("span", { class: "muted" }, c.kind + " "), c.name),
      el("td", { class: "n" }, rate == null ? "…" : rate < 10 ? rate.toFixed(1) : num(Math.round(rate))),
      el("td", { class: "n" }, num(x.queued)), el("td", { class: "n" }, num(x.spool_pending)),
      el("td", { class: "n" }, lag(x.queued + x.spool_pending, rate)),
      el("td", { class: "n" }, num(x.dropped + x.kernel_lost)), el("td", { class: "n" }, num(x.errors)),
      el("td", { class: st[1] }, st[0]));
  });
  state.lastAt = now;
  fill("#health", rows, "no components", 8);
}

// How long what waits takes at the current rate; "stalled" when it waits and nothing moves.
function lag(waiting, rate) {
  if (!waiting) return "0 s";
  if (rate == null) return "…";
  if (rate < 0.01) return "stalled";
  const s = waiting / rate;
  return s < 10 ? s.toFixed(1) + " s" : duration(Math.round(s));
}

async function bans() {
  if (!state.status.guards.length) return;
  $("#bans-panel").hidden = false;
  const guards = await api("bans");
  const rows = [];
  for (const g of guards) {
    if (g.error) { rows.push(el("tr", {}, el("td", {}, g.guard), el("td", { class: "state-bad", colspan: 4 }, g.error))); continue; }
    for (const b of g.bans) {
      rows.push(el("tr", {}, el("td", {}, g.guard + (g.dry_run ? " (dry run)" : "")), el("td", {}, b.prefix), el("td", {}, b.detector),
        el("td", { class: "n" }, duration(b.remaining)), el("td", { class: "n" }, b.offense)));
    }
  }
  fill("#bans", rows, "nobody is banned", 5);
}

// ---- map ----

async function map() {
  if (!state.status.geoip) return;
  $("#map-panel").hidden = false;
  const { places } = await api("places");
  const W = 1000, H = 500;
  const x = (lon) => (lon + 180) / 360 * W, y = (lat) => (90 - lat) / 180 * H;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "map of logged sources" });
  s.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#131b24" }));
  for (const ring of (typeof LAND === "undefined" ? [] : LAND)) {
    s.append(svg("polygon", { points: ring.map(([lo, la]) => `${x(lo).toFixed(1)},${y(la).toFixed(1)}`).join(" "), fill: "#253241", stroke: "#2f3f52" }));
  }
  for (let lon = -180; lon <= 180; lon += 30) s.append(svg("line", { class: "grid", x1: x(lon), x2: x(lon), y1: 0, y2: H, "stroke-opacity": 0.4 }));
  for (let lat = -60; lat <= 60; lat += 30) s.append(svg("line", { class: "grid", y1: y(lat), y2: y(lat), x1: 0, x2: W, "stroke-opacity": 0.4 }));
  const max = Math.max(1, ...places.map((p) => p.packets));
  for (const p of places.slice().reverse()) {
    const r = 3 + 12 * Math.sqrt(p.packets / max);
    const c = svg("circle", { cx: x(p.lon), cy: y(p.lat), r, "fill-opacity": 0.7, fill: p.dropped * 2 >= p.packets ? "var(--drop)" : "var(--accept)", "data-country": p.country || "" });
    c.append(svg("title", {}, `${[p.city, p.country].filter(Boolean).join(", ")}: ${num(p.packets)} packets, ${num(p.dropped)} dropped`));
    s.append(c);
  }
  if (!places.length) s.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no located sources yet"));
  $("#map").replaceChildren(s);
}

// ---- live tail ----

function tailRow(e) {
  const detail = e.kind === "packet" || e.kind === "flow" ? e.line.replace(/^.*? -> \S+ ?/, "") : e.line;
  return el("tr", { class: "fresh row-" + (e.action || "none"), "data-seq": e.seq, title: JSON.stringify(e.record, null, 1) },
    el("td", {}, e.time.slice(11, 23)), el("td", {}, actionTag(e.action)), el("td", {}, prefixTag(e.prefix)),
    el("td", {}, e.protocol || e.kind), el("td", {}, endpoint(e.src, e.sport)), el("td", {}, endpoint(e.dst, e.dport)),
    el("td", {}, detail));
}

function tailQuery() {
  const q = $("#tail-q").value.trim(), a = $("#tail-action").value;
  return (q ? "&q=" + encodeURIComponent(q) : "") + (a ? "&action=" + encodeURIComponent(a) : "");
}

async function startTail() {
  if (state.tail) state.tail.close();
  const body = $("#tail tbody");
  const first = await api("live?limit=50" + tailQuery());
  body.replaceChildren(...first.events.reverse().map(tailRow));
  if (!first.events.length) fill(body, [], "waiting for events…", 7);
  const es = new EventSource(`api/tail?after=${first.last_seq}${tailQuery()}`);
  state.tail = es;
  es.addEventListener("open", () => { $("#tail-state").textContent = "live"; });
  es.addEventListener("error", () => { $("#tail-state").textContent = "reconnecting…"; });
  es.addEventListener("event", (m) => {
    if ($("#tail-pause").checked) return;
    const e = JSON.parse(m.data);
    const empty = body.querySelector(".empty");
    if (empty) empty.parentElement.remove();
    body.prepend(tailRow(e));
    while (body.rows.length > 200) body.deleteRow(-1);
  });
}

// ---- NAT question ----

async function nat(ev) {
  ev.preventDefault();
  const addr = $("#nat-addr").value.trim(), at = $("#nat-at").value.trim();
  $("#nat-note").textContent = "";
  try {
    const r = await api(`nat?addr=${encodeURIComponent(addr)}${at ? "&at=" + encodeURIComponent(at) : ""}`);
    fill("#nat", r.rows.map((f) => el("tr", {},
      el("td", {}, endpoint(f.src_ip, f.src_port)),
      el("td", {}, f.nat_src_ip ? endpoint(f.nat_src_ip, f.nat_src_port) : endpoint(f.dst_ip, f.dst_port)),
      el("td", {}, f.nat_dst_ip ? endpoint(f.nat_dst_ip, f.nat_dst_port) : endpoint(f.dst_ip, f.dst_port)),
      el("td", {}, `${(f.flow_start || "").slice(0, 19)} → ${f.flow_end ? f.flow_end.slice(0, 19) : f.open ? "open" : "?"}`))),
      `no connection through ${addr} at ${r.at.slice(0, 19)}`, 4);
  } catch (e) { $("#nat-note").textContent = e.message; }
}

// ---- wiring ----

async function guarded(f) { try { await f(); } catch (e) { console.warn(f.name, e); } }

async function refresh() {
  await Promise.all([timeline, topSources, topPorts, flows, bans, map].map(guarded));
}

async function main() {
  state.status = await api("status");
  state.store = !!state.status.store;
  $("#host").textContent = `${state.status.host} · nflogd ${state.status.version}`;
  const up = () => { $("#uptime").textContent = "up " + duration(state.status.uptime_seconds + Math.round((Date.now() - t0) / 1000)); };
  const t0 = Date.now(); up(); setInterval(up, 5000);
  $("#range").addEventListener("change", refresh);
  $("#sources-action").addEventListener("change", () => guarded(topSources));
  $("#tail-filter").addEventListener("submit", (e) => e.preventDefault());
  let timer = null;
  $("#tail-q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(startTail, 300); });
  $("#tail-action").addEventListener("change", startTail);
  $("#nat-form").addEventListener("submit", nat);
  await Promise.all([refresh(), guarded(health), guarded(startTail)]);
  setInterval(() => guarded(health), 2000);
  setInterval(refresh, 10000);
  document.body.dataset.ready = "1";
}

main().catch((e) => { document.body.prepend(el("p", { class: "state-bad" }, "dashboard: " + e.message)); });
