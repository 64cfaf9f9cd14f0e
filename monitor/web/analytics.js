// Event Bus Monitor, the Analytics view: GET /api/analytics drawn as inline
// SVG, no framework. It shares app.js's globals (api, handleError, svgEl,
// svgText, fmtNum, $, TOKEN_KEY), loaded after it. Data reaches the DOM only
// through textContent and setAttribute (never innerHTML).
"use strict";

// poll: how often the view reloads while shown. A window's cost grows with
// its events (docs/BENCHMARKS.md: about 0.1 s for 24 hours of a 1M-row table,
// seconds for 30 days), so the long windows load once, when chosen.
const WINDOWS = {
  "1h": { label: "the last hour", bucket: "minute", poll: 15000 },
  "24h": { label: "the last 24 hours", bucket: "hour", poll: 60000 },
  "7d": { label: "the last 7 days", bucket: "6 hours", poll: 0 },
  "30d": { label: "the last 30 days", bucket: "day", poll: 0 },
};
// Colours for event types, most events first; the rest share "other".
const TYPE_COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#475569"];
const OTHER_COLOUR = "#a3a3a3";

const analytics = { timer: null, generation: 0, last: null };

// ---------- View and URL (?view=analytics&window=24h) ----------

function currentView() {
  return new URLSearchParams(location.search).get("view") === "analytics" ? "analytics" : "events";
}

function currentWindow() {
  const w = new URLSearchParams(location.search).get("window");
  return WINDOWS[w] ? w : "24h";
}

// A view or window change is a history entry of its own, so Back returns to it.
function pushViewUrl(view, win) {
  const q = new URLSearchParams(location.search);
  if (view === "analytics") {
    q.set("view", "analytics");
    q.set("window", win);
  } else {
    q.delete("view");
    q.delete("window");
  }
  const s = q.toString();
  history.pushState(null, "", location.pathname + (s ? `?${s}` : ""));
}

function showView() {
  const view = currentView();
  for (const el of $("app").children) {
    if (el.id === "view-nav") continue;
    el.hidden = el.id === "analytics-view" ? view !== "analytics" : view === "analytics";
  }
  for (const tab of document.querySelectorAll(".view-tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(b.dataset.window === currentWindow()));
  clearTimeout(analytics.timer);
  if (view === "analytics") {
    $("detail").hidden = true;
    loadAnalytics();
  }
}

// ---------- Loading ----------

async function loadAnalytics() {
  clearTimeout(analytics.timer);
  if (currentView() !== "analytics" || !sessionStorage.getItem(TOKEN_KEY)) return;
  const gen = ++analytics.generation;
  const win = currentWindow();
  if (!analytics.last || analytics.last.window !== win) $("analytics-state").textContent = "Loading…";
  try {
    const data = await api(`/api/analytics?window=${encodeURIComponent(win)}`);
    if (gen !== analytics.generation) return;
    analytics.last = data;
    renderAnalytics(data);
    $("analytics-state").textContent = "";
  } catch (err) {
    if (gen !== analytics.generation) return;
    $("analytics-state").textContent = `Could not load analytics: ${err.message}`;
    handleError(err);
  }
  if (gen === analytics.generation && !$("app").hidden && WINDOWS[win].poll) analytics.timer = setTimeout(loadAnalytics, WINDOWS[win].poll);
}

// ---------- Rendering ----------

function renderAnalytics(d) {
  const w = WINDOWS[d.window] || { label: d.window, bucket: `${d.bucket_seconds} s` };
  const total = d.totals.total;
  $("analytics-total").textContent = fmtNum(total);
  $("analytics-failure-rate").textContent = fmtPercent(d.failure_rate);
  for (const p of ["p50", "p95", "p99"]) $(`analytics-${p}`).textContent = d.latency_ms.count ? fmtMillis(d.latency_ms[p]) : "–";

  const colours = typeColours(d.event_types);
  renderTypesChart(d, colours);
  renderTypesLegend(d.event_types, colours);
  $("analytics-types-caption").textContent = total
    ? `${fmtNum(total)} events were created in ${w.label}. Each bar is one ${w.bucket}; its height is the number of events, ` +
      `its colours the event types stacked. The busiest type was ${d.event_types[0].event_type} (${fmtNum(d.event_types[0].total)}).`
    : `No events were created in ${w.label}.`;

  const ended = d.totals.processed + d.totals.failed;
  $("analytics-failures-caption").textContent = ended
    ? `Of the ${fmtNum(ended)} events whose delivery ended in ${w.label}, ${fmtPercent(d.failure_rate)} failed ` +
      `(${fmtNum(d.totals.failed)}). Pending events are not counted: they have neither failed nor been delivered yet.`
    : `No delivery ended in ${w.label}.`;
  renderHBars("analytics-failures", d.event_types.map((t) => ({
    label: t.event_type, value: t.failure_rate, text: `${fmtPercent(t.failure_rate)} (${fmtNum(t.failed)} of ${fmtNum(t.processed + t.failed)})`,
    className: "hbar-failed", count: t.failed,
  })), 1);

  const l = d.latency_ms;
  $("analytics-latency-caption").textContent = l.count
    ? `Time from an event's creation to its delivery to NATS, over the ${fmtNum(l.count)} events delivered in ${w.label}: ` +
      `half took ${fmtMillis(l.p50)} or less, 95 in 100 ${fmtMillis(l.p95)} or less, 99 in 100 ${fmtMillis(l.p99)} or less.`
    : `No event was delivered in ${w.label}, so there is no latency to show.`;
  renderHBars("analytics-latency", l.count ? ["p50", "p95", "p99"].map((p) => ({
    label: p, value: l[p], text: fmtMillis(l[p]), className: "hbar-latency", count: l[p],
  })) : [], Math.max(l.p99, 1));

  const aggs = d.busiest_aggregates;
  $("analytics-aggregates-caption").textContent = aggs.length
    ? `The ${aggs.length === 1 ? "aggregate" : `${aggs.length} aggregates`} with the most events in ${w.label}: ` +
      `${aggs[0].aggregate_type} ${aggs[0].aggregate_id} had ${fmtNum(aggs[0].count)}.`
    : `No events in ${w.label}.`;
  renderHBars("analytics-aggregates", aggs.map((a) => ({
    label: `${a.aggregate_type} / ${a.aggregate_id}`, value: a.count, text: fmtNum(a.count), className: "hbar-count", count: a.count,
  })), aggs.length ? aggs[0].count : 1);

  const orgs = d.busiest_organizations;
  $("analytics-organizations-caption").textContent = orgs.length
    ? `The organizations that published the most events in ${w.label}; "no organization" counts events published without one.`
    : `No events in ${w.label}.`;
  renderHBars("analytics-organizations", orgs.map((o) => ({
    label: o.organization_id || "no organization", value: o.count, text: fmtNum(o.count), className: "hbar-count", count: o.count,
  })), orgs.length ? orgs[0].count : 1);
}

function typeColours(types) {
  const m = new Map();
  types.forEach((t, i) => m.set(t.event_type, TYPE_COLOURS[i] || OTHER_COLOUR));
  return m;
}

// Stacked bars: one per bucket, one segment per event type, in the order of
// the legend (most events first) from the bottom up.
function renderTypesChart(d, colours) {
  const W = Math.max(320, $("analytics-types-chart").clientWidth || 800), H = 220, top = 12, bottom = 22, left = 40;
  const plotH = H - top - bottom;
  const order = d.event_types.map((t) => t.event_type);
  const sums = d.buckets.map((b) => b.types.reduce((n, t) => n + t.total, 0));
  const max = Math.max(1, ...sums);
  const bw = (W - left) / Math.max(d.buckets.length, 1);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.setAttribute("aria-label", `Events per type in each ${WINDOWS[d.window]?.bucket || "bucket"}: at most ${max} in one`);
  svg.append(svgEl("line", { x1: left, x2: W, y1: H - bottom, y2: H - bottom, class: "axis" }));
  svg.append(svgText(left - 4, top + 8, fmtNum(max), "end"));
  svg.append(svgText(left - 4, H - bottom, "0", "end"));
  const labelEvery = Math.ceil(d.buckets.length / 6);
  d.buckets.forEach((b, i) => {
    const g = svgEl("g", { "data-testid": "analytics-bucket", "data-start": b.start, "data-total": sums[i] });
    const title = svgEl("title", {});
    title.textContent = `${fmtBucket(b.start, d.bucket_seconds)}: ${sums[i]} events` +
      (b.types.length ? ` — ${b.types.map((t) => `${t.event_type} ${t.total}`).join(", ")}` : "");
    g.append(title);
    const byType = new Map(b.types.map((t) => [t.event_type, t]));
    let y = H - bottom;
    for (const name of order) {
      const t = byType.get(name);
      if (!t || !t.total) continue;
      const h = (t.total / max) * plotH;
      y -= h;
      g.append(svgEl("rect", {
        x: left + i * bw + 0.5, y, width: Math.max(bw - 1, 0.5), height: h, fill: colours.get(name),
        "data-testid": "analytics-segment", "data-type": name, "data-count": t.total,
      }));
    }
    g.append(svgEl("rect", { x: left + i * bw, y: top, width: bw, height: plotH, class: "hit" }));
    svg.append(g);
    if (i % labelEvery === 0) svg.append(svgText(left + i * bw, H - 5, fmtBucket(b.start, d.bucket_seconds), "start"));
  });
  $("analytics-types-chart").replaceChildren(svg);
}

function renderTypesLegend(types, colours) {
  const items = types.map((t) => {
    const li = document.createElement("li");
    li.dataset.testid = "analytics-legend-item";
    li.dataset.type = t.event_type;
    li.dataset.total = String(t.total);
    const sw = svgEl("svg", { width: 12, height: 12, viewBox: "0 0 12 12", "aria-hidden": "true", class: "legend-swatch" });
    sw.append(svgEl("rect", { width: 12, height: 12, rx: 2, fill: colours.get(t.event_type) }));
    li.append(sw, ` ${t.event_type} (${fmtNum(t.total)})`);
    return li;
  });
  $("analytics-types-legend").replaceChildren(...items);
}

// Horizontal bars, one row each: a label, an SVG bar scaled to max, a value.
function renderHBars(id, rows, max) {
  const root = $(id);
  if (!rows.length) { root.replaceChildren(); return; }
  const list = document.createElement("ol");
  for (const r of rows) {
    const li = document.createElement("li");
    li.dataset.testid = `${id}-row`;
    li.dataset.label = r.label;
    li.dataset.count = String(r.count);
    const label = document.createElement("span");
    label.className = "hbar-label mono";
    label.textContent = r.label;
    label.title = r.label;
    const bar = svgEl("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "hbar", "aria-hidden": "true" });
    bar.append(svgEl("rect", { x: 0, y: 0, width: 100, height: 10, class: "hbar-track" }));
    bar.append(svgEl("rect", { x: 0, y: 0, width: Math.max(0, Math.min(100, (r.value / max) * 100)), height: 10, class: r.className }));
    const value = document.createElement("span");
    value.className = "hbar-value";
    value.textContent = r.text;
    li.append(label, bar, value);
    list.append(li);
  }
  root.replaceChildren(list);
}

// ---------- Formatting ----------

function fmtPercent(x) {
  if (typeof x !== "number") return "–";
  if (x === 0) return "0%";
  return x < 0.001 ? "<0.1%" : `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
}

function fmtMillis(ms) {
  if (typeof ms !== "number") return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10000 ? 0 : 1)} s`;
  return `${ms >= 10 ? Math.round(ms) : ms.toFixed(1)} ms`;
}

function fmtBucket(iso, seconds) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  if (seconds >= 86400) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  if (seconds >= 6 * 3600) return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

// ---------- Start ----------

function initAnalytics() {
  for (const tab of document.querySelectorAll(".view-tab")) {
    tab.addEventListener("click", () => {
      if (tab.dataset.view === currentView()) return;
      pushViewUrl(tab.dataset.view, currentWindow());
      showView();
    });
  }
  for (const b of document.querySelectorAll("[data-window]")) {
    b.addEventListener("click", () => {
      if (b.dataset.window === currentWindow()) return;
      pushViewUrl("analytics", b.dataset.window);
      showView();
    });
  }
  window.addEventListener("popstate", showView);
  window.addEventListener("resize", () => { if (currentView() === "analytics" && analytics.last) renderAnalytics(analytics.last); });
  // Signing in shows #app: load the view then (and stop when it hides again).
  new MutationObserver(() => { if (!$("app").hidden) showView(); else clearTimeout(analytics.timer); })
    .observe($("app"), { attributes: true, attributeFilter: ["hidden"] });
  if (!$("app").hidden) showView();
}

initAnalytics();
