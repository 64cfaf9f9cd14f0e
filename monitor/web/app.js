// Event Bus Monitor: plain JS, no framework, no build step, so the relay can
// embed it and serve it as is. Every piece of data from the API goes into the
// DOM through textContent (never innerHTML), so payloads cannot inject markup.
"use strict";

const TOKEN_KEY = "eventbus.token";
const POLL_MS = 3000;
const PAGE_SIZE = 100;
const STATUSES = ["pending", "processing", "processed", "failed"];
const FILTERS = ["status", "event_type", "aggregate_type", "aggregate_id", "q", "payload", "organization_id", "since", "until"];
const TIME_FILTERS = ["since", "until"]; // RFC 3339 in the URL and the API, local time in the form
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

// All mutable page state in one place.
const state = {
  rows: new Map(),      // id -> { event, tr, sig }
  order: [],            // ids in display order (newest first)
  nextCursor: null,
  loadedMore: false,    // once "Load more" was used, a refresh must not reset the cursor
  generation: 0,        // bumps when filters change, so late responses are dropped
  refreshing: false,
  detailId: null,
  timer: null,
  redelivered: {},      // webhook id -> the last Redeliver's result
};

// ---------- API ----------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the relay (${err.message}).`);
  }
  let data = null;
  try { data = await res.json(); } catch { /* non-JSON body: report the status below */ }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

// 401/403 mean the token is useless: drop it and ask again instead of polling on.
function handleError(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    const why = err.status === 401 ? "Token missing or wrong" : "Not an admin";
    showLogin(`${why}: ${err.message}`);
    return;
  }
  showBanner(err.message || String(err));
}

function showBanner(message) {
  const b = $("banner");
  b.textContent = message;
  b.hidden = !message;
}

// ---------- Session ----------

function showLogin(message) {
  stopPolling();
  sessionStorage.removeItem(TOKEN_KEY);
  $("detail").hidden = true; // keep detailId: signing back in reopens it
  $("app").hidden = true;
  $("session-actions").hidden = true;
  showBanner("");
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token-input").focus();
}

function startSession() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("session-actions").hidden = false;
  resetList();
  refresh();
  if (state.detailId) openDetail(state.detailId);
}

function onLoginSubmit(ev) {
  ev.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-input").value = "";
  startSession();
}

function onSignOut(ev) {
  ev.preventDefault();
  showLogin("Signed out.");
}

// ---------- Polling ----------

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, POLL_MS);
}

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = null;
}

// One refresh = stats + first page of events (+ the open detail). Failures show a
// banner but keep polling, so a relay restart heals by itself.
async function refresh() {
  if (state.refreshing || !sessionStorage.getItem(TOKEN_KEY)) return;
  state.refreshing = true;
  const gen = state.generation;
  try {
    const [stats, page, hooks] = await Promise.all([api("/api/stats"), api(eventsUrl(null)), loadWebhooks()]);
    if (gen !== state.generation) return; // filters changed meanwhile; a new refresh is coming
    renderStats(stats);
    mergeFirstPage(page);
    renderCount(page);
    renderWebhooks(hooks);
    showBanner("");
    if (state.detailId) await refreshDetail();
  } catch (err) {
    // An empty list would otherwise say "Loading…" forever (e.g. a filter the API rejects).
    if (!state.order.length) setListState(`Could not load events: ${err.message}`);
    handleError(err);
  } finally {
    state.refreshing = false;
    if (gen !== state.generation) refresh();
    else if (!$("app").hidden) schedule();
  }
}

// ---------- Webhooks: endpoints and their failed deliveries ----------

// Each endpoint with its latest failed deliveries (at most 20). A failure
// here (an older relay, say) leaves the rest of the page alone.
async function loadWebhooks() {
  try {
    const { webhooks } = await api("/api/webhooks");
    return await Promise.all(webhooks.map(async (w) => {
      const { deliveries } = await api(`/api/webhooks/${encodeURIComponent(w.id)}/deliveries?status=failed&limit=20`);
      return { ...w, failed: deliveries };
    }));
  } catch (err) {
    return err;
  }
}

// Rebuilt on every refresh; a Redeliver result stays until the next action.
function renderWebhooks(hooks) {
  const root = $("webhooks");
  if (hooks instanceof Error) {
    $("webhooks-state").textContent = `Could not load webhooks: ${hooks.message}`;
    return;
  }
  root.replaceChildren();
  $("webhooks-state").textContent = hooks.length ? "" : "No webhook endpoints.";
  for (const w of hooks) {
    const box = document.createElement("div");
    box.className = "webhook";
    box.dataset.testid = "webhook";
    box.dataset.id = w.id;
    const head = document.createElement("div");
    head.className = "webhook-head";
    const url = document.createElement("span");
    url.className = "mono";
    url.textContent = w.url;
    const what = document.createElement("span");
    what.textContent = ` ${(w.event_types || []).length ? w.event_types.join(", ") : "every type"} · ${w.organization_id || "every organization"}${w.enabled ? "" : " · disabled"}`;
    const count = document.createElement("span");
    count.dataset.testid = "webhook-failed-count";
    count.className = w.failed.length ? "badge badge-failed" : "badge badge-processed";
    count.textContent = `${w.failed.length} failed`;
    head.append(url, what, " ", count);
    box.append(head);
    if (w.failed.length) {
      const table = document.createElement("table");
      const headRow = document.createElement("tr");
      for (const name of ["Time", "Event", "Type", "Attempts", "Last error"]) {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = name;
        headRow.append(th);
      }
      table.createTHead().append(headRow);
      const body = document.createElement("tbody");
      for (const d of w.failed) {
        const tr = document.createElement("tr");
        tr.dataset.testid = "webhook-delivery";
        tr.dataset.id = d.id;
        tr.append(cell("Time", fmtTime(d.created_at)), cell("Event", d.event_id), cell("Type", d.event_type),
          cell("Attempts", String(d.attempts)), cell("Last error", d.last_error || "", "webhook-delivery-error"));
        body.append(tr);
      }
      table.append(body);
      const btn = document.createElement("button");
      btn.type = "button";
      btn.textContent = "Redeliver failed";
      btn.dataset.testid = "btn-redeliver";
      btn.addEventListener("click", () => onRedeliver(w.id, btn));
      box.append(table, btn);
    }
    const result = document.createElement("span");
    result.dataset.testid = "redeliver-result";
    result.setAttribute("role", "status");
    result.textContent = state.redelivered[w.id] || "";
    box.append(result);
    root.append(box);
  }
}

async function onRedeliver(id, btn) {
  btn.disabled = true;
  try {
    const { redelivered } = await api(`/api/webhooks/${encodeURIComponent(id)}/redeliver`, { method: "POST" });
    state.redelivered[id] = `${redelivered} ${redelivered === 1 ? "delivery" : "deliveries"} redelivered`;
  } catch (err) {
    state.redelivered[id] = `Redeliver failed: ${err.message}`;
    handleError(err);
  } finally {
    btn.disabled = false;
    refresh();
  }
}

// ---------- Filters (kept in the URL so a reload keeps them) ----------

function readFiltersFromUrl() {
  const q = new URLSearchParams(location.search);
  for (const name of FILTERS) {
    const v = q.get(name) || "";
    $(`filter-${name.replace("_", "-")}`).value = TIME_FILTERS.includes(name) ? toLocalInput(v) : v;
  }
  state.detailId = q.get("event");
}

function currentFilters() {
  const f = {};
  for (const name of FILTERS) {
    let v = $(`filter-${name.replace("_", "-")}`).value.trim();
    if (v && TIME_FILTERS.includes(name)) v = fromLocalInput(v);
    if (v) f[name] = v;
  }
  return f;
}

// An RFC 3339 time as a datetime-local input's value (the browser's time
// zone), and back; a value that does not parse is passed on for the API to
// refuse by name.
function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || isNaN(d)) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fromLocalInput(v) {
  const d = new Date(v);
  return isNaN(d) ? v : d.toISOString().replace(".000Z", "Z");
}

// The filter and the open event live in the URL, which can be shared; a new
// filter is a new history entry (push), so Back returns to the one before.
// The view's own parameters (analytics.js) are kept.
function writeUrl(push) {
  const q = new URLSearchParams(currentFilters());
  if (state.detailId) q.set("event", state.detailId);
  const old = new URLSearchParams(location.search);
  for (const k of ["view", "window"]) if (old.has(k)) q.set(k, old.get(k));
  const s = q.toString();
  const url = location.pathname + (s ? `?${s}` : "");
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

// Back and Forward restore the filter of that entry (an entry of the
// Analytics view's own leaves the list alone).
function onPopState() {
  const before = JSON.stringify([currentFilters(), state.detailId]);
  readFiltersFromUrl();
  $("filter-payload").setAttribute("aria-invalid", "false");
  $("filter-payload-hint").textContent = "";
  if (JSON.stringify([currentFilters(), state.detailId]) === before) return;
  state.generation++;
  resetList();
  refresh();
  if (state.detailId) openDetail(state.detailId);
  else $("detail").hidden = true;
}

// A payload filter is applied only once it is a JSON object, so typing one
// does not flash the API's refusal at every key.
function payloadProblem() {
  const v = $("filter-payload").value.trim();
  if (!v) return "";
  try {
    const o = JSON.parse(v);
    if (o !== null && typeof o === "object" && !Array.isArray(o)) return "";
  } catch { /* reported below */ }
  return "Not a JSON object yet, e.g. {\"lead_id\": \"42\"}";
}

function renderCount(page) {
  const out = $("events-count");
  if (typeof page.matched !== "number") return; // only the first page counts
  const n = page.matched;
  out.textContent = page.matched_capped ? `${fmtNum(n)}+ events match` : `${fmtNum(n)} ${n === 1 ? "event matches" : "events match"}`;
  out.dataset.matched = String(n);
  out.dataset.capped = String(Boolean(page.matched_capped));
}

function eventsUrl(cursor) {
  const q = new URLSearchParams(currentFilters());
  q.set("limit", String(PAGE_SIZE));
  if (cursor) q.set("cursor", cursor);
  return `/api/events?${q}`;
}

let filterDebounce = null;
function onFilterChange(ev) {
  clearTimeout(filterDebounce);
  const problem = payloadProblem();
  $("filter-payload").setAttribute("aria-invalid", String(Boolean(problem)));
  $("filter-payload-hint").textContent = problem;
  if (problem) return;
  const apply = () => {
    writeUrl(true);
    state.generation++;
    resetList();
    refresh();
  };
  // A select is one deliberate choice: apply it at once, so the rows of the
  // old filter are never shown (or clicked) under the new one. Typing fires
  // per key; wait for a pause so we don't hammer the API.
  if (ev && ev.target && ev.target.tagName === "SELECT") {
    if (ev.type === "change") apply(); // it fires input too: once is enough
    return;
  }
  filterDebounce = setTimeout(apply, 300);
}

// ---------- Events table ----------

function resetList() {
  state.rows.clear();
  state.order = [];
  state.nextCursor = null;
  state.loadedMore = false;
  $("events-body").replaceChildren();
  $("events-count").textContent = "";
  setListState("Loading events…");
  $("btn-more").hidden = true;
}

// The fields that can change after insert; a row is rebuilt only if one did.
function signature(e) {
  return [e.status, e.retry_count, e.error_message, e.processed_at].join("|");
}

// Merge a fresh first page into what is shown: update changed rows, add new ones
// on top, drop rows that no longer match, and keep rows fetched with "Load more".
function mergeFirstPage(page) {
  const events = page.events || [];
  const fresh = new Set(events.map((e) => e.id));
  const oldest = events.length ? Date.parse(events[events.length - 1].created_at) : NaN;
  const complete = !page.next_cursor; // the first page holds every match
  // Rows older than the fresh page came from "Load more" and stay; missing rows
  // inside its time range no longer match the filters and go.
  const keep = state.order.filter((id) => {
    if (fresh.has(id)) return false;
    return !complete && Date.parse(state.rows.get(id).event.created_at) <= oldest;
  });
  const kept = new Set(keep);
  for (const id of state.order) {
    if (!fresh.has(id) && !kept.has(id)) state.rows.delete(id);
  }
  for (const e of events) upsertRow(e);
  if (!state.loadedMore) state.nextCursor = page.next_cursor || null;
  applyOrder(events.map((e) => e.id).concat(keep));
}

function appendPage(page) {
  const events = (page.events || []).filter((e) => !state.rows.has(e.id));
  for (const e of events) upsertRow(e);
  state.nextCursor = page.next_cursor || null;
  applyOrder(state.order.concat(events.map((e) => e.id)));
}

function upsertRow(e) {
  const sig = signature(e);
  const row = state.rows.get(e.id);
  if (row && row.sig === sig) { row.event = e; return; }
  const tr = buildRow(e);
  if (row) row.tr.replaceWith(tr);
  state.rows.set(e.id, { event: e, tr, sig });
}

function cell(label, text, testid) {
  const td = document.createElement("td");
  td.dataset.label = label; // shown by the phone card layout
  td.textContent = text;
  if (testid) td.dataset.testid = testid;
  return td;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge badge-${status}`;
  span.textContent = status;
  return span;
}

function buildRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.testid = "event-row";
  tr.dataset.id = e.id;
  tr.tabIndex = 0; // rows open the detail, so they must be reachable by keyboard
  if (e.id === state.detailId) tr.classList.add("selected");
  const status = cell("Status", "", "event-status");
  status.append(badge(e.status));
  tr.append(
    cell("Time", fmtTime(e.created_at)),
    cell("Type", e.event_type),
    cell("Aggregate type", e.aggregate_type),
    cell("Aggregate id", e.aggregate_id),
    status,
    cell("Retries", String(e.retry_count)),
  );
  return tr;
}

// Put rows into the wanted order, moving only nodes that are out of place, and
// hold the viewport still when rows appear above what the user is looking at.
function applyOrder(ids) {
  const body = $("events-body");
  const anchor = firstVisibleRow(body);
  const before = anchor ? anchor.getBoundingClientRect().top : 0;
  let cursor = body.firstChild;
  for (const id of ids) {
    const tr = state.rows.get(id).tr;
    if (tr === cursor) cursor = cursor.nextSibling;
    else body.insertBefore(tr, cursor);
  }
  while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
  state.order = ids;
  if (anchor && anchor.isConnected) {
    const shift = anchor.getBoundingClientRect().top - before;
    if (shift) window.scrollBy(0, shift);
  }
  updateListState();
}

function firstVisibleRow(body) {
  if (window.scrollY === 0) return null; // at the top, new events should just show up
  for (const tr of body.children) if (tr.getBoundingClientRect().bottom > 0) return tr;
  return null;
}

function setListState(text) {
  $("events-state").textContent = text;
  $("events-state").hidden = !text;
}

function updateListState() {
  const filtered = Object.keys(currentFilters()).length > 0;
  if (state.order.length) setListState("");
  else setListState(filtered ? "No events match these filters." : "No events yet.");
  $("btn-more").hidden = !state.nextCursor;
}

async function onLoadMore() {
  const btn = $("btn-more");
  const gen = state.generation;
  btn.disabled = true;
  btn.textContent = "Loading…";
  try {
    const page = await api(eventsUrl(state.nextCursor));
    if (gen !== state.generation) return;
    state.loadedMore = true;
    appendPage(page);
  } catch (err) {
    handleError(err);
  } finally {
    btn.disabled = false;
    btn.textContent = "Load more";
  }
}

function onRowActivate(ev) {
  if (ev.type === "keydown" && ev.key !== "Enter" && ev.key !== " ") return;
  const tr = ev.target.closest("tr[data-id]");
  if (!tr) return;
  ev.preventDefault();
  openDetail(tr.dataset.id);
}

// ---------- Stats, chart, relay ----------

function renderStats(s) {
  for (const k of [...STATUSES, "total"]) $(`stat-${k}`).textContent = fmtNum(s[k]);
  renderChart(s.per_minute || []);
  renderRelay(s.relay || {});
}

// Stacked bars in inline SVG: 60 minutes is small enough that redrawing the
// whole chart on each poll is cheaper than diffing it.
let lastPoints = [];
function renderChart(points) {
  lastPoints = points;
  // Size the viewBox to the box it is drawn in, so text is never stretched.
  const W = Math.max(280, $("chart").clientWidth || 600), H = 180, top = 10, bottom = 20, left = 30;
  const plotH = H - top - bottom;
  const max = Math.max(1, ...points.map((p) => STATUSES.reduce((n, s) => n + (p[s] || 0), 0)));
  const bw = (W - left) / Math.max(points.length, 60);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  const total = points.reduce((n, p) => n + STATUSES.reduce((m, s) => m + (p[s] || 0), 0), 0);
  svg.setAttribute("aria-label", `${total} events in the last 60 minutes, at most ${max} in one minute`);
  svg.append(svgEl("line", { x1: left, x2: W, y1: H - bottom, y2: H - bottom, class: "axis" }));
  svg.append(svgText(left - 4, top + 8, String(max), "end"));
  svg.append(svgText(left - 4, H - bottom, "0", "end"));
  points.forEach((p, i) => {
    const g = svgEl("g", {});
    const title = svgEl("title", {});
    title.textContent = `${fmtClock(p.minute)} — ` + STATUSES.map((s) => `${s} ${p[s] || 0}`).join(", ");
    g.append(title);
    let y = H - bottom;
    for (const s of STATUSES) {
      const h = ((p[s] || 0) / max) * plotH;
      if (h <= 0) continue;
      y -= h;
      g.append(svgEl("rect", { x: left + i * bw + 0.5, y, width: Math.max(bw - 1, 0.5), height: h, class: `bar-${s}` }));
    }
    // Transparent full-height rect so the tooltip works on empty minutes too.
    g.append(svgEl("rect", { x: left + i * bw, y: top, width: bw, height: plotH, class: "hit" }));
    svg.append(g);
    if (i % 15 === 0) svg.append(svgText(left + i * bw, H - 5, fmtClock(p.minute), "start"));
  });
  $("chart").replaceChildren(svg);
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function svgText(x, y, text, anchor) {
  const t = svgEl("text", { x, y, "text-anchor": anchor, class: "tick" });
  t.textContent = text;
  return t;
}

function setDot(id, level) {
  $(id).className = `dot dot-${level}`; // level: ok | warn | bad | none
}

function renderRelay(r) {
  const stateLevel = { active: "ok", standby: "warn", stopped: "bad" }[r.state] || "none";
  setDot("relay-dot", stateLevel);
  $("relay-state").textContent = r.state || "unknown";
  setDot("slot-dot", r.slot_active ? "ok" : "warn");
  $("relay-slot").textContent = `${r.slot || "–"} (${r.slot_active ? "active" : "inactive"})`;
  const secs = r.lag_seconds;
  setDot("lag-dot", secs == null ? "none" : secs < 10 ? "ok" : secs < 60 ? "warn" : "bad");
  const bytes = r.lag_bytes == null ? "–" : fmtBytes(r.lag_bytes);
  const time = secs == null ? "–" : `${secs.toFixed(1)} s`;
  $("relay-lag").textContent = `${bytes} · ${time}`;
  setDot("nats-dot", r.nats_connected ? "ok" : "bad");
  $("relay-nats").textContent = r.nats_connected ? "connected" : "disconnected";
}

// ---------- Detail ----------

async function openDetail(id) {
  state.detailId = id;
  writeUrl();
  for (const tr of $("events-body").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  const row = state.rows.get(id);
  if (row) row.tr.classList.add("selected");
  $("replay-result").textContent = "";
  const panel = $("detail");
  panel.hidden = false;
  if (row) renderDetail(row.event); // show what we have at once, then the full record
  else $("detail-title").textContent = "Loading…";
  await refreshDetail();
  $("detail-close").focus();
}

async function refreshDetail() {
  const id = state.detailId;
  try {
    const e = await api(`/api/events/${encodeURIComponent(id)}`);
    if (id === state.detailId) renderDetail(e);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      $("detail-title").textContent = "Event not found";
    } else {
      handleError(err);
    }
  }
}

function renderDetail(e) {
  $("detail-title").textContent = e.event_type;
  $("detail-id").textContent = e.id;
  $("detail-type").textContent = e.event_type;
  $("detail-aggregate").textContent = `${e.aggregate_type} / ${e.aggregate_id}`;
  $("detail-org").textContent = e.organization_id || "—";
  const st = $("detail-status");
  st.className = `badge badge-${e.status}`;
  st.textContent = e.status;
  $("detail-retries").textContent = String(e.retry_count);
  $("detail-created").textContent = fmtTime(e.created_at);
  $("detail-processed").textContent = e.processed_at ? fmtTime(e.processed_at) : "—";
  $("detail-error").textContent = e.error_message || "—";
  $("detail-error").classList.toggle("error-text", Boolean(e.error_message));
  setPre("detail-payload", e.payload);
  setPre("detail-metadata", e.metadata);
  // Redrive hands a failed event back to the relay, its retries kept.
  $("btn-redrive").hidden = e.status !== "failed";
}

// Rewriting an unchanged <pre> would reset the user's text selection on every poll.
function setPre(id, value) {
  const text = JSON.stringify(value ?? null, null, 2);
  if ($(id).textContent !== text) $(id).textContent = text;
}

function closeDetail() {
  if (!state.detailId && $("detail").hidden) return;
  const id = state.detailId;
  state.detailId = null;
  $("detail").hidden = true;
  writeUrl();
  const row = id && state.rows.get(id);
  if (row) { row.tr.classList.remove("selected"); row.tr.focus(); }
}

async function onReplay() {
  const id = state.detailId;
  if (!id || !confirm("Replay this event? It will be published to NATS again.")) return;
  const btn = $("btn-replay");
  const out = $("replay-result");
  btn.disabled = true;
  out.textContent = "Replaying…";
  try {
    const r = await api(`/api/events/${encodeURIComponent(id)}/replay`, { method: "POST", body: {} });
    out.textContent = `Replayed (${r.replayed}).`;
    refresh();
  } catch (err) {
    out.textContent = `Replay failed: ${err.message}`;
    if (err.status === 401 || err.status === 403) handleError(err);
  } finally {
    btn.disabled = false;
  }
}

async function onRedrive() {
  const id = state.detailId;
  if (!id) return;
  const btn = $("btn-redrive");
  const out = $("replay-result");
  btn.disabled = true;
  out.textContent = "Redriving…";
  try {
    await api(`/api/events/${encodeURIComponent(id)}/redrive`, { method: "POST", body: {} });
    out.textContent = "Handed back to the relay.";
    refresh();
    refreshDetail();
  } catch (err) {
    out.textContent = `Redrive failed: ${err.message}`;
    if (err.status === 401 || err.status === 403) handleError(err);
  } finally {
    btn.disabled = false;
  }
}

// ---------- Process pending ----------

async function onProcess() {
  const btn = $("btn-process");
  const out = $("process-result");
  btn.disabled = true;
  out.textContent = "Processing…";
  try {
    const r = await api("/api/events/process", { method: "POST", body: { limit: 100 } });
    const n = r.handed_back;
    out.textContent = `${n} event${n === 1 ? "" : "s"} handed back`;
    refresh();
  } catch (err) {
    out.textContent = `Failed: ${err.message}`;
    if (err.status === 401 || err.status === 403) handleError(err);
  } finally {
    btn.disabled = false;
  }
}

// ---------- Formatting ----------

function fmtNum(n) {
  return typeof n === "number" ? n.toLocaleString() : "–";
}

function fmtTime(iso) {
  if (!iso) return "—"; // a row whose created_at is NULL: no time, not 1970
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function fmtClock(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

// ---------- Start ----------

function init() {
  $("login-form").addEventListener("submit", onLoginSubmit);
  $("sign-out").addEventListener("click", onSignOut);
  $("filters").addEventListener("input", onFilterChange);
  $("filters").addEventListener("change", onFilterChange); // older browsers fire only change on <select>
  $("filters").addEventListener("submit", (ev) => ev.preventDefault());
  $("filters").addEventListener("reset", () => setTimeout(onFilterChange, 0)); // after the form cleared its fields
  window.addEventListener("popstate", onPopState);
  $("events-body").addEventListener("click", onRowActivate);
  $("events-body").addEventListener("keydown", onRowActivate);
  $("btn-more").addEventListener("click", onLoadMore);
  $("btn-process").addEventListener("click", onProcess);
  $("btn-replay").addEventListener("click", onReplay);
  $("btn-redrive").addEventListener("click", onRedrive);
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDetail(); });
  window.addEventListener("resize", () => { if (!$("app").hidden) renderChart(lastPoints); });
  // The detail panel starts below the sticky top bar, whose height changes when it wraps.
  const bar = document.querySelector(".topbar");
  new ResizeObserver(() => document.documentElement.style.setProperty("--topbar-height", `${bar.offsetHeight}px`)).observe(bar);
  takeTokenFromFragment();
  readFiltersFromUrl();
  if (sessionStorage.getItem(TOKEN_KEY)) startSession();
  else showLogin("");
}

// A sign-in link (make run prints one) carries the token in the URL's
// fragment, #token=…, which the browser never sends to a server. It is moved
// to sessionStorage and wiped from the address bar and the history entry.
function takeTokenFromFragment() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

init();
