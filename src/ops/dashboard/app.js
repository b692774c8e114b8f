// shipgate dashboard: one page over the admin API (/api/v1).
// Everything shown comes from the network and is inserted as text
// (textContent / createTextNode), never as HTML.
"use strict";

const TOKEN_KEY = "shipgate.adminToken";
// The providers the gateway serves, built-in and data-defined, in the
// order /api/v1/stats lists them; read at sign-in.
let PROVIDERS = [];
const OUTCOMES = ["accepted", "duplicate", "unauthorized", "invalid", "unmapped", "ignored"];
const PAGE = 50;
const REFRESH_MS = 2000;
const CHART_MINUTES = 30;
const DELIVERIES_SHOWN = 100;

const $ = (id) => document.getElementById(id);

/** Builds an element; string children become text nodes. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** Thrown when the token is refused; signs out. */
class SignedOut extends Error {}

const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", Authorization: `Bearer ${session.token}`, ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    signOut((body && body.error) || "the admin token was refused");
    throw new SignedOut();
  }
  if (!response.ok) {
    const error = new Error((body && (body.error || body.errors)) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function setConnection(text) {
  $("connection").textContent = text;
}

// ---- sign-in -----------------------------------------------------------

let timer = null;

function signOut(reason) {
  session.token = null;
  clearTimeout(timer);
  timer = null;
  $("app").hidden = true;
  $("signout").hidden = true;
  $("signin-view").hidden = false;
  $("signin-error").textContent = reason || "";
  setConnection("");
}

async function signIn(token) {
  session.token = token;
  $("signin-error").textContent = "";
  try {
    PROVIDERS = Object.keys((await api("/api/v1/stats")).providers);
  } catch (e) {
    if (!(e instanceof SignedOut)) $("signin-error").textContent = `Cannot reach the gateway: ${e.message}`;
    return;
  }
  $("signin-view").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  buildCounts();
  await Promise.all([feed.reset(), refreshRules()]);
  tick(0);
}

// ---- counts and chart ----------------------------------------------------

function buildCounts() {
  $("events-provider").replaceChildren(
    el("option", { value: "" }, "all"),
    ...PROVIDERS.map((p) => el("option", { value: p }, p)),
  );
  const body = $("counts").tBodies[0];
  body.replaceChildren(
    ...PROVIDERS.map((p) =>
      el("tr", { "data-provider": p }, el("th", {}, p),
        ...OUTCOMES.map((o) => el("td", { id: `count-${p}-${o}`, "data-outcome": o }, "0")))),
  );
  $("chart-legend").replaceChildren(...OUTCOMES.map((o) => el("span", { class: `o-${o}` }, o)));
}

async function refreshCounts() {
  const stats = await api("/api/v1/stats");
  for (const p of PROVIDERS) {
    for (const o of OUTCOMES) {
      const value = (stats.providers[p] || {})[o] || 0;
      $(`count-${p}-${o}`).textContent = String(value);
    }
  }
}

async function refreshChart() {
  const { minutes } = await api(`/api/v1/stats/timeline?minutes=${CHART_MINUTES}`);
  const chart = $("chart");
  const width = 640, height = 160, left = 34, bottom = 18, top = 8;
  const sum = (m, o) => PROVIDERS.reduce((n, p) => n + ((m.providers[p] || {})[o] || 0), 0);
  // Unmapped deliveries are counted as accepted too; stacked, each request
  // shows once.
  const totals = minutes.map((m) => OUTCOMES.map((o) =>
    (o === "accepted" ? sum(m, o) - sum(m, "unmapped") : sum(m, o))));
  const peak = Math.max(1, ...totals.map((t) => t.reduce((a, b) => a + b, 0)));
  const slot = (width - left) / minutes.length;
  const scale = (height - bottom - top) / peak;
  const nodes = [
    svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
    svg("text", { x: 2, y: top + 8 }, peak),
    svg("text", { x: 2, y: height - bottom }, 0),
  ];
  minutes.forEach((minute, i) => {
    let y = height - bottom;
    const x = left + i * slot + 1;
    OUTCOMES.forEach((o, k) => {
      const count = totals[i][k];
      if (!count) return;
      const h = count * scale;
      y -= h;
      const bar = svg("rect", { class: `o-${o}`, x, y, width: Math.max(1, slot - 2), height: h, "data-outcome": o });
      bar.append(svg("title", {}, `${new Date(minute.start).toLocaleTimeString()}: ${count} ${o}`));
      nodes.push(bar);
    });
  });
  const label = (i, anchor) => svg("text", { x: left + i * slot + (anchor === "end" ? slot : 0), y: height - 4, "text-anchor": anchor },
    new Date(minutes[i].start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  if (minutes.length) nodes.push(label(0, "start"), label(minutes.length - 1, "end"));
  chart.replaceChildren(...nodes);
}

// ---- recent events ---------------------------------------------------------

function kindText(kind) {
  return kind.value ? `${kind.type}: ${kind.value}` : kind.type;
}

function eventRow(event, fresh) {
  const k = event.key;
  const open = el("button", {
    type: "button", class: "link",
    onclick: () => {
      $("lookup-tracking").value = "";
      guard(showFulfillment(k.store, k.order_ref, k.fulfillment_ref));
    },
  }, `${k.store} / ${k.order_ref} / ${k.fulfillment_ref}`);
  return el("tr", {
    "data-event-id": event.id, "data-provider": event.provider,
    "data-fulfillment": `${k.store}/${k.order_ref}/${k.fulfillment_ref}`, class: fresh ? "fresh" : null,
  },
    el("td", { title: event.received_at }, new Date(event.received_at).toLocaleTimeString()),
    el("td", {}, event.provider),
    el("td", {}, open),
    el("td", { class: `kind-${event.kind.type}` }, kindText(event.kind)),
    el("td", {}, event.raw_status),
    el("td", {}, event.message || ""));
}

/** The feed: newest first; new events are prepended, older pages appended. */
const feed = {
  newest: null,
  oldest: null,
  exhausted: false,
  // Bumped by reset: answers to requests made before it are dropped.
  generation: 0,
  // The generation whose page is being loaded, so clicks and polls do not
  // load the same page twice.
  loading: null,
  query() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    const provider = $("events-provider").value;
    const store = $("events-store").value.trim();
    if (provider) params.set("provider", provider);
    if (store) params.set("store", store);
    return params;
  },
  count() {
    const n = $("events").tBodies[0].rows.length;
    $("events-count").textContent = `${n} shown${this.exhausted ? " (all)" : ""}`;
    $("events-more").disabled = this.exhausted;
  },
  reset() {
    this.generation += 1;
    this.newest = null;
    this.oldest = null;
    this.exhausted = false;
    $("events").tBodies[0].replaceChildren();
    return this.older();
  },
  async older() {
    const generation = this.generation;
    if (this.loading === generation) return;
    this.loading = generation;
    try {
      const params = this.query();
      if (this.oldest) params.set("before", this.oldest);
      const { events } = await api(`/api/v1/events?${params}`);
      if (generation !== this.generation) return;
      const body = $("events").tBodies[0];
      for (const event of events) body.append(eventRow(event, false));
      if (events.length) {
        this.oldest = events[events.length - 1].id;
        if (!this.newest) this.newest = events[0].id;
      }
      this.exhausted = events.length < PAGE;
      this.count();
    } finally {
      if (this.loading === generation) this.loading = null;
    }
  },
  async newer() {
    // An empty feed fills from the first page.
    if (!this.newest) return this.older();
    const generation = this.generation;
    // Page back from the newest until the last event already shown.
    const fresh = [];
    let before = null;
    for (let pages = 0; pages < 20; pages++) {
      const params = this.query();
      if (before) params.set("before", before);
      const { events } = await api(`/api/v1/events?${params}`);
      const unseen = events.filter((e) => e.id > this.newest);
      fresh.push(...unseen);
      if (unseen.length < events.length || events.length < PAGE) break;
      before = events[events.length - 1].id;
    }
    if (!fresh.length || generation !== this.generation) return;
    this.newest = fresh[0].id;
    $("events").tBodies[0].prepend(...fresh.map((e) => eventRow(e, true)));
    this.count();
  },
};

// ---- fulfillment -------------------------------------------------------------

function locationText(location) {
  if (!location) return "";
  return [location.city, location.state, location.postalCode, location.country].filter(Boolean).join(", ");
}

function timelineEntry(entry) {
  const details = [entry.provider, entry.rawStatus && entry.rawStatus !== entry.status ? `"${entry.rawStatus}"` : null,
    locationText(entry.location), entry.stale ? "stale: older than the current status" : null].filter(Boolean);
  return el("li", { class: `kind-${entry.kind}${entry.stale ? " stale" : ""}`, "data-status": entry.status, "data-kind": entry.kind },
    el("span", { class: "when", title: entry.datetime }, new Date(entry.datetime).toLocaleString()),
    el("span", { class: "status" }, entry.status),
    entry.kind !== "status" ? el("span", { class: "muted" }, ` (${entry.kind})`) : null,
    el("div", {}, entry.message || ""),
    el("div", { class: "detail" }, details.join(" · ")));
}

async function showFulfillment(store, order, fulfillment) {
  $("lookup-store").value = store;
  $("lookup-order").value = order;
  $("lookup-fulfillment").value = fulfillment;
  $("lookup-error").textContent = "";
  $("lookup-matches").replaceChildren();
  const path = ["/api/v1/stores", store, "orders", order, "fulfillments", fulfillment].map((part, i) => (i % 2 ? encodeURIComponent(part) : part)).join("/");
  let f;
  try {
    f = await api(path);
  } catch (e) {
    if (e instanceof SignedOut) return;
    $("fulfillment").hidden = true;
    $("lookup-error").textContent = e.message;
    return;
  }
  $("f-key").textContent = `${f.store} / ${f.orderId} / ${f.id}`;
  $("f-status").textContent = f.status;
  $("f-eta").textContent = f.estimatedDeliveryDate || "unknown";
  $("f-delivered").textContent = f.deliveredAt ? new Date(f.deliveredAt).toLocaleString() : "not yet";
  $("f-carrier").textContent = f.trackingCompany || "unknown";
  $("f-tracking").textContent = f.trackingNumber || "unknown";
  $("f-updated").textContent = new Date(f.updatedAt).toLocaleString();
  $("f-timeline").replaceChildren(...f.trackingHistory.map(timelineEntry));
  $("fulfillment").hidden = false;
}

async function findByTracking(number) {
  $("lookup-error").textContent = "";
  const { fulfillments } = await api(`/api/v1/fulfillments?trackingNumber=${encodeURIComponent(number)}`);
  if (fulfillments.length === 1) {
    const [f] = fulfillments;
    return showFulfillment(f.store, f.orderId, f.fulfillmentId);
  }
  $("fulfillment").hidden = true;
  if (!fulfillments.length) {
    $("lookup-error").textContent = `no recent event carries tracking number ${number}`;
    return;
  }
  $("lookup-matches").replaceChildren(...fulfillments.map((f) => el("li", {},
    el("button", { type: "button", class: "link", onclick: () => showFulfillment(f.store, f.orderId, f.fulfillmentId) },
      `${f.store} / ${f.orderId} / ${f.fulfillmentId}`),
    ` (${f.provider})`)));
}

// ---- automation deliveries and dead letters ---------------------------------------

function when(time) {
  return time ? new Date(time).toLocaleString() : "";
}

/** What the last attempt got back: its HTTP status, reason and detail. */
function lastAnswer(delivery) {
  const last = delivery.attempts[delivery.attempts.length - 1];
  if (!last) return "";
  return [last.status ? `HTTP ${last.status}` : null, last.reason, last.detail].filter(Boolean).join(" · ");
}

function fulfillmentButton(d) {
  return el("button", {
    type: "button", class: "link",
    onclick: () => {
      $("lookup-tracking").value = "";
      guard(showFulfillment(d.store, d.order, d.fulfillment));
    },
  }, `${d.store} / ${d.order} / ${d.fulfillment}`);
}

/** What each table last showed, so an unchanged answer leaves the rows
 * (and a button about to be clicked) in place. */
const rendered = new Map();

function render(table, items, row, empty) {
  const signature = JSON.stringify(items);
  if (rendered.get(table) === signature) return;
  rendered.set(table, signature);
  $(table).tBodies[0].replaceChildren(...(items.length
    ? items.map(row)
    : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, empty))]));
}

function shownText(n) {
  return n < DELIVERIES_SHOWN ? `${n} shown` : `newest ${n} shown: narrow the filter for older ones`;
}

/** Fills the rule filter from the configured rules, keeping the choice. */
async function refreshRules() {
  const { automations } = await api("/api/v1/automations");
  const select = $("deliveries-rule");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "all"),
    ...automations.map((rule) => el("option", { value: rule.name }, rule.name)));
  select.value = automations.some((rule) => rule.name === chosen) ? chosen : "";
}

async function refreshDeliveries() {
  const params = new URLSearchParams({ limit: String(DELIVERIES_SHOWN) });
  for (const [name, id] of [["rule", "deliveries-rule"], ["state", "deliveries-state"], ["store", "deliveries-store"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  const { deliveries } = await api(`/api/v1/deliveries?${params}`);
  render("deliveries", deliveries, (d) => el("tr", { "data-delivery-id": d.id, "data-rule": d.rule, "data-state": d.state },
      el("td", { title: d.created_at }, when(d.created_at)),
      el("td", {}, d.rule),
      el("td", {}, fulfillmentButton(d)),
      el("td", {}, d.trigger),
      el("td", { class: `state state-${d.state}` }, d.state),
      el("td", { class: "attempts" }, d.attempts.length),
      el("td", { class: "detail" }, lastAnswer(d)),
      el("td", { title: d.next_attempt_at || "" }, when(d.next_attempt_at))), "none");
  $("deliveries-count").textContent = shownText(deliveries.length);
}

function deadLetterQuery() {
  const params = new URLSearchParams();
  const reason = $("dead-letters-reason").value;
  if (reason) params.set("reason", reason);
  return params;
}

async function refreshDeadLetters() {
  const params = deadLetterQuery();
  params.set("limit", String(DELIVERIES_SHOWN));
  const { dead_letters: dead } = await api(`/api/v1/dead-letters?${params}`);
  render("dead-letters", dead, (d) => el("tr", { "data-delivery-id": d.id, "data-rule": d.rule, "data-reason": d.reason },
      el("td", { title: d.created_at }, when(d.created_at)),
      el("td", {}, d.rule),
      el("td", {}, fulfillmentButton(d)),
      el("td", {}, d.trigger),
      el("td", { class: "reason" }, d.reason || ""),
      el("td", { class: "attempts" }, d.attempts.length),
      el("td", { class: "detail" }, lastAnswer(d)),
      el("td", {}, el("button", { type: "button", class: "replay", onclick: () => replay(d.id) }, "Replay"))),
  "none: every delivery got through or is still being tried");
  $("dead-letters-count").textContent = shownText(dead.length);
  $("dead-letters-replay-all").disabled = !dead.length;
}

/** Runs a replay request, says what came of it, and shows the outbox anew. */
async function replaying(request, done) {
  const message = $("dead-letters-message");
  try {
    message.textContent = done(await request());
  } catch (e) {
    if (e instanceof SignedOut) return;
    message.textContent = `Not replayed: ${e.message}`;
  }
  await Promise.all([refreshDeadLetters(), refreshDeliveries()]).catch(() => {});
}

function replay(id) {
  return replaying(() => api(`/api/v1/dead-letters/${encodeURIComponent(id)}/replay`, { method: "POST" }),
    ({ replayed }) => `Delivery ${replayed.id} (${replayed.rule}) is queued again.`);
}

function replayAll() {
  return replaying(() => api(`/api/v1/dead-letters/replay?${deadLetterQuery()}`, { method: "POST" }),
    ({ replayed }) => `${replayed} dead letter${replayed === 1 ? " is" : "s are"} queued again.`);
}

// ---- unmapped words ------------------------------------------------------------

async function refreshUnmapped() {
  const { unmapped } = await api("/api/v1/unmapped");
  $("unmapped").tBodies[0].replaceChildren(...(unmapped.length
    ? unmapped.map((w) => el("tr", { "data-provider": w.provider, "data-word": w.word },
      el("td", {}, w.provider), el("td", {}, el("code", {}, w.word)), el("td", {}, w.count)))
    : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "none: every word received is mapped"))]));
}

// ---- the refresh loop ----------------------------------------------------------

async function tick(round) {
  try {
    const work = [refreshCounts(), refreshChart(), refreshDeliveries(), refreshDeadLetters()];
    if ($("events-live").checked) work.push(feed.newer());
    if (round % 5 === 0) work.push(refreshUnmapped());
    await Promise.all(work);
    setConnection(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (e instanceof SignedOut) return;
    setConnection(`cannot refresh: ${e.message}`);
  }
  if (session.token) timer = setTimeout(() => tick(round + 1), REFRESH_MS);
}

function guard(promise) {
  promise.catch((e) => {
    if (!(e instanceof SignedOut)) setConnection(`error: ${e.message}`);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    guard(signIn($("token").value.trim()));
  });
  $("signout").addEventListener("click", () => signOut("signed out"));
  $("events-more").addEventListener("click", () => guard(feed.older()));
  $("events-provider").addEventListener("change", () => guard(feed.reset()));
  $("events-store").addEventListener("change", () => guard(feed.reset()));
  $("events-filter").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["deliveries-rule", "deliveries-state", "deliveries-store"]) {
    $(id).addEventListener("change", () => guard(refreshDeliveries()));
  }
  $("deliveries-filter").addEventListener("submit", (event) => event.preventDefault());
  $("dead-letters-reason").addEventListener("change", () => guard(refreshDeadLetters()));
  $("dead-letters-filter").addEventListener("submit", (event) => event.preventDefault());
  $("dead-letters-replay-all").addEventListener("click", () => replayAll());
  $("lookup").addEventListener("submit", (event) => {
    event.preventDefault();
    const tracking = $("lookup-tracking").value.trim();
    if (tracking) guard(findByTracking(tracking));
    else guard(showFulfillment($("lookup-store").value.trim(), $("lookup-order").value.trim(), $("lookup-fulfillment").value.trim()));
  });
  if (session.token) guard(signIn(session.token));
});
