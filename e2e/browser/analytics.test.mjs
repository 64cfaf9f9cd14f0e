// Browser test of the monitor's Analytics view, run by
// TestSearchAndAnalyticsInTheBrowser (e2e/search_browser_test.go): the view
// opens from its tab and keeps itself in the URL (view, window); the stacked
// chart, its legend and the summary show the counts the Go test published;
// the failure rate, latency and busiest lists render; Back returns to the
// window before.
//
// Environment: BASE_URL, TOKEN, CHROMIUM, WANT (JSON: {"types": {type:
// count}, "total": n, "failure_rate": "11%", "top_aggregate": "test /
// pay-1", "top_aggregate_count": 2}), SCREENSHOT.
// stdout "DONE" at the end; exit code 0 only when every step passed.
import { chromium } from "playwright-core";

const TIMEOUT = 30_000;
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const env = (name) => process.env[name] || fail(`environment variable ${name} is not set`);
const log = (msg) => console.error(`[browser] ${msg}`);

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const want = JSON.parse(env("WANT"));
const screenshot = env("SCREENSHOT");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 60_000,
});
let step = "start";
const pageErrors = [];
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 1400 }, locale: "en-US", timezoneId: "UTC" })).newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  // What the chart shows: per type, the sum of its segments' counts and the
  // legend's total; the buckets drawn; the summary.
  const shown = () => page.evaluate(() => {
    const segments = {};
    for (const r of document.querySelectorAll('[data-testid="analytics-segment"]')) {
      segments[r.dataset.type] = (segments[r.dataset.type] || 0) + Number(r.dataset.count);
    }
    const legend = {};
    for (const li of document.querySelectorAll('[data-testid="analytics-legend-item"]')) legend[li.dataset.type] = Number(li.dataset.total);
    const aggs = [...document.querySelectorAll('[data-testid="analytics-aggregates-row"]')];
    return {
      segments, legend,
      buckets: document.querySelectorAll('[data-testid="analytics-bucket"]').length,
      total: document.getElementById("analytics-total").textContent,
      failureRate: document.getElementById("analytics-failure-rate").textContent,
      p50: document.getElementById("analytics-p50").textContent,
      latencyRows: document.querySelectorAll('[data-testid="analytics-latency-row"]').length,
      failureRows: document.querySelectorAll('[data-testid="analytics-failures-row"]').length,
      topAggregate: aggs[0] ? [aggs[0].dataset.label, Number(aggs[0].dataset.count)] : null,
      organizations: document.querySelectorAll('[data-testid="analytics-organizations-row"]').length,
      caption: document.getElementById("analytics-types-caption").textContent,
    };
  });
  const expectCounts = async (what, buckets) => {
    const deadline = Date.now() + TIMEOUT;
    let s;
    for (;;) {
      s = await shown();
      if (sameCounts(s.segments, want.types) && sameCounts(s.legend, want.types) && s.buckets === buckets && s.total === String(want.total) &&
        s.failureRate === want.failure_rate && s.p50.endsWith("ms") && s.latencyRows === 3 &&
        s.failureRows === Object.keys(want.types).length && s.organizations === 3 &&
        JSON.stringify(s.topAggregate) === JSON.stringify([want.top_aggregate, want.top_aggregate_count]) &&
        s.caption.startsWith(`${want.total} events were created`)) return;
      if (Date.now() > deadline) throw new Error(`${what}: the view shows ${JSON.stringify(s)}, want ${JSON.stringify(want)} in ${buckets} buckets`);
      await page.waitForTimeout(200);
    }
  };
  const expectParams = async (what, w) => {
    await page.waitForFunction((w) => {
      const q = new URL(location.href).searchParams;
      return Object.entries(w).every(([k, v]) => q.get(k) === v);
    }, w, { timeout: TIMEOUT, polling: 100 }).catch(() => { throw new Error(`${what}: URL ${page.url()}, want ${JSON.stringify(w)}`); });
  };

  step = "sign in";
  log(step);
  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });

  step = "open the Analytics view: the last 24 hours";
  log(step);
  await page.getByTestId("view-analytics").click();
  await expectParams(step, { view: "analytics", window: "24h" });
  await page.getByTestId("analytics").waitFor({ state: "visible" });
  if (await page.getByTestId("events-table").isVisible()) throw new Error(`${step}: the events table is still shown`);
  await expectCounts(step, 24);

  step = "the last hour, per minute";
  log(step);
  await page.getByTestId("analytics-window-1h").click();
  await expectParams(step, { view: "analytics", window: "1h" });
  await expectCounts(step, 60);
  await page.screenshot({ path: screenshot, fullPage: true });

  step = "Back returns to the last 24 hours";
  log(step);
  await page.goBack();
  await expectParams(step, { view: "analytics", window: "24h" });
  await expectCounts(step, 24);

  step = "a shared URL opens the view";
  log(step);
  await page.goto(`${baseURL}/crm/events?view=analytics&window=7d`);
  await page.getByTestId("analytics").waitFor({ state: "visible" });
  await expectCounts(step, 28);

  step = "the Events tab returns to the list";
  log(step);
  await page.getByTestId("view-events").click();
  await page.getByTestId("events-table").waitFor({ state: "visible" });
  await expectParams(step, { view: null, window: null });
  if (await page.getByTestId("analytics").isVisible()) throw new Error(`${step}: the analytics view is still shown`);

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  process.stdout.write("DONE\n");
} catch (err) {
  console.error(`FAIL: ${step}: ${err.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
process.exit(0);

function sameCounts(got, want) {
  const a = Object.keys(got).sort(), b = Object.keys(want).sort();
  return JSON.stringify(a) === JSON.stringify(b) && b.every((k) => got[k] === want[k]);
}
