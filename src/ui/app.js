// The Meridian web console (docs/console.md): plain JavaScript over this node's HTTP API. Every
// value shown comes from the API and is written as text (never as HTML): keys and documents are
// the users' data.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "meridian-console-token";

// --- The API -----------------------------------------------------------------------------------

// A token given in the address (#token=... or #/view&token=...) is kept for this tab and taken out
// of the address at once.
// Percent-decoding that does not throw on a malformed escape ("100%"): the text as it is.
function decoded(text) {
  try { return decodeURIComponent(text); } catch (e) { return text; }
}

(function takeTokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decoded(match[1]));
    const rest = location.hash.replace(/(?:^#|&)token=[^&]+/, "").replace(/^#?&?/, "");
    history.replaceState(null, "", location.pathname + "#" + (rest || "/deployment"));
  }
})();

class Unauthorized extends Error {}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const answer = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (answer.status === 401) throw new Unauthorized(await answer.text());
  const text = await answer.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
  if (!answer.ok) {
    const message = body && (body.message || body.error) ? `${body.error || answer.status}: ${body.message || ""}` : `HTTP ${answer.status}`;
    throw new Error(message);
  }
  return body;
}

// --- Small DOM helpers ---------------------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function ms(value) {
  if (value === undefined || value === null) return "—";
  if (value >= 10000) return (value / 1000).toFixed(1) + " s";
  if (value < 10) return value.toFixed(1) + " ms";
  return Math.round(value) + " ms";
}

function when(ms_since_epoch) {
  if (!ms_since_epoch) return "—";
  return new Date(ms_since_epoch).toLocaleTimeString();
}

function hlcTime(hlc) {
  if (!hlc) return "—";
  const physical = Number(String(hlc).split(".")[0]);
  return Number.isFinite(physical) ? new Date(physical).toLocaleTimeString() : hlc;
}

function json(value) {
  return JSON.stringify(value);
}

function showError(where, error) {
  if (error instanceof Unauthorized) { askForToken(error.message); return; }
  where.replaceChildren(el("span", { class: "error" }, String(error.message || error)));
}

// --- Token ---------------------------------------------------------------------------------------

function askForToken(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message ? "Refused: " + message : "";
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  route();
});

// --- Views ---------------------------------------------------------------------------------------

const views = {};
let current = null;
let timer = null;
let generation = 0;  // a refresh loop stops when the view it belongs to is left

// The address names a view and, for documents and watches, what to open:
// #/documents/<key>, #/watch/<prefix> (percent-encoded).
function route() {
  const match = location.hash.match(/^#\/(\w+)(?:\/(.*))?$/) || [null, "deployment", undefined];
  const name = match[1];
  const argument = match[2] === undefined ? undefined : decoded(match[2]);
  const view = views[name] ? name : "deployment";
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== "view-" + view;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
  if (current && current !== view && views[current].leave) views[current].leave();
  current = view;
  clearTimeout(timer);
  const mine = ++generation;
  // The next refresh is asked only once this one is answered: a slow node never has a tab's
  // requests pile up.
  const refresh = async () => {
    try {
      await views[view].refresh();
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (error instanceof Unauthorized) askForToken(error.message);
      else document.getElementById("updated").textContent = "error: " + error.message;
    }
    if (views[view].poll && mine === generation) timer = setTimeout(refresh, REFRESH_MS);
  };
  if (views[view].open && argument !== undefined) views[view].open(argument);
  refresh();
}
window.addEventListener("hashchange", route);

// Deployment: every region, every directed pair's lag and visibility, the conflict feed.
const lastEvents = {};  // region -> {events, at}: writes per second between two refreshes
views.deployment = {
  poll: true,
  async refresh() {
    const [deployment, conflicts] = await Promise.all([
      api("/v1/deployment"), api("/v1/conflicts?limit=15")]);
    document.getElementById("where").textContent =
      `region ${deployment.region} of ${Object.keys(deployment.regions).length}`;
    drawDeployment(deployment);
    drawConflicts(conflicts);
  },
};

function regionState(entry) {
  if (!entry.status) return { text: "unreachable", cls: "bad" };
  const status = entry.status;
  if (status.rebuild && status.rebuild.rebuilding) return { text: "rebuilding", cls: "warn" };
  if (status.reseed && status.reseed.state === "running") return { text: "re-seeding", cls: "warn" };
  return { text: "serving", cls: "ok" };
}

function drawDeployment(deployment) {
  const names = Object.keys(deployment.regions);
  const now = Date.now();
  // Regions.
  const rows = names.map((name) => {
    const entry = deployment.regions[name];
    const state = regionState(entry);
    const status = entry.status || {};
    let rate = "—";
    if (entry.status) {
      const last = lastEvents[name];
      const events = status.local_events;
      if (last && events >= last.events && now > last.at) {
        rate = ((events - last.events) * 1000 / (now - last.at)).toFixed(1);
      }
      lastEvents[name] = { events, at: now };
    }
    return el("tr", {},
      el("td", {}, name, name === deployment.region ? el("span", { class: "muted" }, " (this node)") : null),
      el("td", { class: state.cls, title: entry.error || "" }, state.text),
      el("td", { class: "num" }, rate),
      el("td", { class: "num" }, status.documents ?? "—"),
      el("td", { class: "num" }, status.conflicts ?? "—"),
      el("td", { class: "num" }, status.dead_letters ?? "—"),
      el("td", { class: "mono", title: status.digest ?? "" }, status.digest ? status.digest.slice(0, 8) : "—"));
  });
  fill(document.querySelector("#regions tbody"), rows);

  // Directed pairs: events of `from`, readable in `to`, as `to` sees them.
  const pairs = [];
  for (const to of names) {
    const status = deployment.regions[to].status;
    for (const from of names) {
      if (from === to) continue;
      const origin = status && status.origins ? status.origins[from] : undefined;
      const peer = status && status.peers ? status.peers.find((p) => p.name === from) : undefined;
      pairs.push({ from, to, origin, peer, known: !!status });
    }
  }
  fill(document.querySelector("#pairs tbody"), pairs.map((pair) => {
    const link = !pair.known ? ["unknown", "bad"]
      : pair.peer && pair.peer.connected ? ["up", "ok"]
      : pair.peer && pair.peer.relayed_by ? ["relayed by " + pair.peer.relayed_by, "warn"]
      : ["down", "bad"];
    const o = pair.origin || {};
    return el("tr", {},
      el("td", {}, pair.from), el("td", {}, pair.to),
      el("td", { class: link[1] }, link[0]),
      el("td", { class: "num" }, pair.origin ? ms(o.lag_ms) : "—"),
      el("td", { class: "num" }, o.visibility_ms && o.visibility_ms.count ? ms(o.visibility_ms.p50) : "—"),
      el("td", { class: "num" }, o.visibility_ms && o.visibility_ms.count ? ms(o.visibility_ms.p99) : "—"),
      el("td", { class: "num" }, o.arrival_ms && o.arrival_ms.count ? ms(o.arrival_ms.p99) : "—"));
  }));

  // Converged: every region answered, the same digest everywhere, nothing behind.
  const statuses = names.map((n) => deployment.regions[n].status);
  const badge = document.getElementById("converged");
  if (statuses.some((s) => !s)) {
    badge.textContent = "a region is unreachable"; badge.className = "badge bad";
  } else if (new Set(statuses.map((s) => s.digest)).size === 1 &&
             pairs.every((p) => !p.origin || !p.origin.lag_events)) {
    badge.textContent = "converged: equal digests"; badge.className = "badge ok";
  } else {
    badge.textContent = "replicating"; badge.className = "badge warn";
  }
  drawMap(names, deployment, pairs);
}

// The map: regions on a circle, a line per pair labelled with the p99 visibility each way.
function drawMap(names, deployment, pairs) {
  const map = document.getElementById("map");
  const cx = 320, cy = 170, r = 125;
  const at = {};
  names.forEach((name, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    at[name] = { x: cx + r * Math.cos(angle) * 1.6, y: cy + r * Math.sin(angle) };
  });
  const nodes = [];
  const colour = { ok: "#3fb950", warn: "#d29922", bad: "#f85149" };
  for (let i = 0; i < names.length; ++i) {
    for (let j = i + 1; j < names.length; ++j) {
      const a = names[i], b = names[j];
      const ab = pairs.find((p) => p.from === a && p.to === b);
      const ba = pairs.find((p) => p.from === b && p.to === a);
      const up = [ab, ba].every((p) => p.peer && p.peer.connected);
      const known = [ab, ba].every((p) => p.known);
      const stroke = !known ? colour.bad : up ? colour.ok : colour.warn;
      nodes.push(svg("line", { x1: at[a].x, y1: at[a].y, x2: at[b].x, y2: at[b].y, class: "link", stroke }));
      const p99 = (p) => p && p.origin && p.origin.visibility_ms && p.origin.visibility_ms.count
        ? ms(p.origin.visibility_ms.p99) : "—";
      // The labels beside the line, away from the centre of the map.
      let mx = (at[a].x + at[b].x) / 2, my = (at[a].y + at[b].y) / 2;
      const dx = mx - cx, dy = my - cy, length = Math.hypot(dx, dy) || 1;
      mx += (dx / length) * 48; my += (dy / length) * 30;
      nodes.push(svg("text", { x: mx, y: my - 6, "text-anchor": "middle", class: "label" }, `${a}→${b} p99 ${p99(ab)}`));
      nodes.push(svg("text", { x: mx, y: my + 10, "text-anchor": "middle", class: "label" }, `${b}→${a} p99 ${p99(ba)}`));
    }
  }
  for (const name of names) {
    const state = regionState(deployment.regions[name]);
    nodes.push(svg("circle", { cx: at[name].x, cy: at[name].y, r: 34, class: "region", stroke: colour[state.cls] }));
    nodes.push(svg("text", { x: at[name].x, y: at[name].y + 5, "text-anchor": "middle" }, name));
  }
  map.replaceChildren(...nodes);
}

function drawConflicts(answer) {
  document.getElementById("conflict-total").textContent = `${answer.total} ever`;
  const items = answer.conflicts.map((c) => el("li", {},
    el("span", { class: "mono" }, c.key), " · ", c.field, " — ", c.kind.replace("_", " "), ": ",
    el("span", { class: "shown" }, json(c.winner.value), " (", c.winner.region, ")"),
    (c.losers || []).map((l) => [" over ", json(l.value), " (", l.region, ")"])));
  document.getElementById("conflicts").replaceChildren(
    ...(items.length ? items : [el("li", { class: "muted" }, "none recorded")]));
}

// Documents: a prefix scan, and one document with what made it.
let scanAfter = null;
views.documents = {
  async refresh() {
    if (!document.getElementById("keys").children.length) await scan(false);
  },
  open(key) { showDocument(key); },
};

async function scan(more) {
  const prefix = document.getElementById("scan-prefix").value;
  if (!more) { scanAfter = null; document.getElementById("keys").replaceChildren(); }
  const query = new URLSearchParams({ prefix, limit: "50" });
  if (scanAfter) query.set("after", scanAfter);
  try {
    const page = await api("/v1/docs?" + query);
    for (const item of page.items) {
      document.getElementById("keys").append(el("li", { onclick: () => showDocument(item.key) }, item.key));
    }
    scanAfter = page.next;
    document.getElementById("scan-more").hidden = !page.next;
    if (!page.items.length && !more) {
      document.getElementById("keys").append(el("li", { class: "muted" }, "no document"));
    }
  } catch (error) {
    showError(document.getElementById("keys"), error);
  }
}
document.getElementById("scan-form").addEventListener("submit", (e) => { e.preventDefault(); scan(false); });
document.getElementById("scan-more").addEventListener("click", () => scan(true));

async function showDocument(key) {
  for (const li of document.querySelectorAll("#keys li")) li.classList.toggle("active", li.textContent === key);
  document.getElementById("doc-key").textContent = key;
  document.getElementById("doc-hint").hidden = true;
  const pre = document.getElementById("doc-json");
  try {
    const history = await api("/v1/docs/" + encodeURIComponent(key) + "/history");
    pre.textContent = history.document === null ? "(deleted: its metadata is kept until folded)"
      : JSON.stringify(history.document, null, 2);
    const fields = history.fields.map((f) => el("tr", {},
      el("td", { class: "mono" }, f.name),
      el("td", { class: "mono" }, f.value === null ? "—" : json(f.value)),
      el("td", {}, f.siblings.map((s) => el("div", { class: s.rendered ? "shown" : "" },
        json(s.value), " ", el("span", { class: "muted" }, `${s.event} at ${hlcTime(s.hlc)}`),
        s.rendered && f.siblings.length > 1 ? " (shown: the latest)" : ""))),
      el("td", {}, Object.entries(f.increments_by_region).map(([region, sum]) =>
        el("div", {}, `${region}: ${sum > 0 ? "+" : ""}${sum}`)))));
    fill(document.querySelector("#doc-fields tbody"), fields);
    const events = history.events.map((e) => el("tr", {},
      el("td", { class: "mono" }, e.event), el("td", {}, e.region),
      el("td", {}, e.hlc ? hlcTime(e.hlc) : "—"),
      el("td", { class: "mono" }, e.in_log === false ? "no longer in the log" :
        `${e.op} ${json(e.fields || e.counters || {})}`),
      el("td", { class: "mono" }, e.context ? json(e.context) : "—",
        e.traceparent ? [" ", el("a", { href: "#/trace/" + e.traceparent.slice(3, 35) }, "trace")] : null)));
    fill(document.querySelector("#doc-events tbody"), events);
    for (const id of ["doc-fields", "doc-events", "doc-events-title"]) document.getElementById(id).hidden = false;
  } catch (error) {
    showError(pre, error);
  }
}

// Watch: the live changes of a prefix (SSE read with fetch, so that the token goes along).
let watching = null;
views.watch = {
  async refresh() {},
  open(prefix) {
    document.getElementById("watch-prefix").value = prefix;
    startWatch();
  },
  leave() { stopWatch(); },
};

function stopWatch() {
  if (watching) watching.abort();
  watching = null;
  document.getElementById("watch-start").disabled = false;
  document.getElementById("watch-stop").disabled = true;
}

async function startWatch() {
  stopWatch();
  const controller = new AbortController();
  watching = controller;
  const state = document.getElementById("watch-state");
  document.getElementById("watch-start").disabled = true;
  document.getElementById("watch-stop").disabled = false;
  const prefix = document.getElementById("watch-prefix").value;
  const tbody = document.querySelector("#changes tbody");
  try {
    const answer = await fetch("/v1/watch?" + new URLSearchParams({ prefix }), { headers: headers(), signal: controller.signal });
    if (answer.status === 401) throw new Unauthorized(await answer.text());
    if (!answer.ok) throw new Error(`HTTP ${answer.status}: ${await answer.text()}`);
    state.textContent = "live"; state.className = "badge ok";
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data) continue;
        const change = JSON.parse(data);
        if (change.error) throw new Error(`${change.error}: ${change.message}`);
        tbody.prepend(el("tr", {},
          el("td", { class: "mono" }, change.event || "merged"),
          el("td", { class: "mono" }, change.key),
          el("td", {}, hlcTime(change.hlc)),
          el("td", { class: "mono" }, change.doc === null ? "(deleted)" : json(change.doc))));
        while (tbody.children.length > 200) tbody.lastChild.remove();
      }
    }
    state.textContent = "ended"; state.className = "badge warn";
  } catch (error) {
    if (controller.signal.aborted) { state.textContent = "stopped"; state.className = "badge"; return; }
    if (error instanceof Unauthorized) askForToken(error.message);
    state.textContent = String(error.message || error); state.className = "badge bad";
  } finally {
    if (watching === controller) stopWatch();
  }
}
document.getElementById("watch-form").addEventListener("submit", (e) => { e.preventDefault(); startWatch(); });
document.getElementById("watch-stop").addEventListener("click", stopWatch);

// Trace: one traced write's spans in every region, as a waterfall from its write.
const STEP = {
  "meridian.write": "written (durable)", "meridian.send": "waited to be sent",
  "meridian.wire": "on the wire", "meridian.apply": "applied: readable",
};
views.trace = {
  async refresh() {},
  open(id) { document.getElementById("trace-id").value = id; showTrace(id); },
};

async function showTrace(id) {
  const missing = document.getElementById("trace-missing");
  missing.textContent = "";
  try {
    const trace = await api("/v1/traces/" + encodeURIComponent(id) + "?regions=all");
    const spans = trace.spans;
    document.getElementById("spans").hidden = spans.length === 0;
    document.getElementById("trace-hint").hidden = spans.length > 0;
    if (!spans.length) { missing.textContent = "No region holds spans of this trace (each keeps its newest 10,000)."; return; }
    const start = Math.min(...spans.map((s) => s.start_ms));
    const end = Math.max(...spans.map((s) => s.start_ms + s.duration_ms));
    const total = Math.max(end - start, 1);
    fill(document.querySelector("#spans tbody"), spans.map((s) => {
      const bar = el("div", { class: "bar" + (s.name === "meridian.write" ? " write" : "") });
      // Positioned by CSSOM (allowed by the page's policy, unlike style attributes).
      bar.style.marginLeft = ((s.start_ms - start) * 100 / total).toFixed(2) + "%";
      bar.style.width = Math.max(s.duration_ms * 100 / total, 0.5).toFixed(2) + "%";
      const via = s.attributes["meridian.via"];
      return el("tr", {},
        el("td", {}, s.region),
        el("td", {}, STEP[s.name] || s.name),
        el("td", { class: "num" }, ms(s.start_ms + s.duration_ms - start)),
        el("td", { class: "num" }, ms(s.duration_ms)),
        el("td", { class: "bar-cell" }, bar),
        el("td", {}, via ? (via === s.attributes["meridian.origin"] ? via + " (direct)" : via + " (relayed)") : "—"),
        el("td", { class: "mono" }, s.attributes["meridian.event"] || "—"));
    }));
    if (trace.unanswered) missing.textContent = "Not answered: " + Object.keys(trace.unanswered).join(", ");
  } catch (error) {
    showError(missing, error);
  }
}
document.getElementById("trace-form").addEventListener("submit", (e) => {
  e.preventDefault();
  location.hash = "#/trace/" + encodeURIComponent(document.getElementById("trace-id").value.trim());
});

// Operations: verification, repairs, dead letters, rebuilding and re-seeding of every region.
views.operations = {
  poll: true,
  async refresh() {
    const [verify, repairs, dead, deployment] = await Promise.all([
      api("/v1/verify"), api("/v1/repairs?limit=20"), api("/v1/dead-letters?limit=20"), api("/v1/deployment")]);
    document.getElementById("where").textContent =
      `region ${deployment.region} of ${Object.keys(deployment.regions).length}`;
    fill(document.querySelector("#verify tbody"), verify.peers.map((p) => el("tr", {},
      el("td", {}, p.peer),
      el("td", { class: p.state === "identical" ? "ok" : p.state === "differing" ? "bad" : "muted", title: p.error || "" }, p.state),
      el("td", {}, when(p.at_ms)),
      el("td", { class: "num" }, p.differing ?? "—"),
      el("td", { class: "num" }, p.repaired_here ?? "—"),
      el("td", { class: "num" }, p.repaired_there ?? "—"))));
    document.getElementById("damaged").textContent =
      `${verify.damaged_documents} document(s) here marked damaged, waiting for a repair`;
    document.getElementById("repair-total").textContent = `${repairs.total} ever`;
    fill(document.querySelector("#repairs tbody"), repairs.items.length ? repairs.items.map((r) => el("tr", {},
      el("td", {}, when(r.time_ms)), el("td", { class: "mono" }, r.key), el("td", {}, r.problem), el("td", {}, r.action)))
      : [el("tr", {}, el("td", { class: "muted", colspan: "4" }, "none"))]);
    document.getElementById("dead-total").textContent = `${dead.total} ever`;
    fill(document.querySelector("#dead-letters tbody"), dead.items.length ? dead.items.map((d) => el("tr", {},
      el("td", { class: "num" }, d.id), el("td", { class: "mono" }, d.event), el("td", { class: "mono" }, d.key ?? "—"),
      el("td", { class: d.status === "parked" ? "warn" : "ok" }, d.status), el("td", {}, d.reason), el("td", {}, when(d.parked_ms))))
      : [el("tr", {}, el("td", { class: "muted", colspan: "6" }, "none"))]);
    fill(document.querySelector("#rebuild tbody"), Object.entries(deployment.regions).map(([name, entry]) => {
      const status = entry.status;
      if (!status) return el("tr", {}, el("td", {}, name), el("td", { class: "bad", colspan: "3" }, "unreachable"));
      const reseed = status.reseed || {};
      const progress = reseed.documents ? `${reseed.installed} of ${reseed.documents} documents` : "—";
      return el("tr", {}, el("td", {}, name),
        el("td", { class: status.rebuild && status.rebuild.rebuilding ? "warn" : "ok" },
          status.rebuild && status.rebuild.rebuilding ? `yes (waiting for ${(status.rebuild.waiting_for || []).join(", ") || "peers"})` : "no"),
        el("td", {}, reseed.state ? `${reseed.state} from ${reseed.source}` : "never"),
        el("td", {}, progress));
    }));
  },
};
document.getElementById("verify-now").addEventListener("click", async () => {
  try { await api("/v1/verify", { method: "POST" }); } catch (error) { showError(document.getElementById("damaged"), error); }
});

route();
