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
import { env, expectParams, run, signIn, TIMEOUT } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const want = JSON.parse(env("WANT"));
const screenshot = env("SCREENSHOT");

await run({ viewport: { width: 1280, height: 1400 }, locale: "en-US", timezoneId: "UTC" }, async ({ page, begin }) => {
  let step;
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

  step = begin("sign in");
  await signIn(page, baseURL, token);

  step = begin("open the Analytics view: the last 24 hours");
  await page.getByTestId("view-analytics").click();
  await expectParams(page, step, { view: "analytics", window: "24h" });
  await page.getByTestId("analytics").waitFor({ state: "visible" });
  if (await page.getByTestId("events-table").isVisible()) throw new Error(`${step}: the events table is still shown`);
  await expectCounts(step, 24);

  step = begin("the last hour, per minute");
  await page.getByTestId("analytics-window-1h").click();
  await expectParams(page, step, { view: "analytics", window: "1h" });
  await expectCounts(step, 60);
  await page.screenshot({ path: screenshot, fullPage: true });

  step = begin("Back returns to the last 24 hours");
  await page.goBack();
  await expectParams(page, step, { view: "analytics", window: "24h" });
  await expectCounts(step, 24);

  step = begin("a shared URL opens the view");
  await page.goto(`${baseURL}/crm/events?view=analytics&window=7d`);
  await page.getByTestId("analytics").waitFor({ state: "visible" });
  await expectCounts(step, 28);

  step = begin("the Events tab returns to the list");
  await page.getByTestId("view-events").click();
  await page.getByTestId("events-table").waitFor({ state: "visible" });
  await expectParams(page, step, { view: null, window: null });
  if (await page.getByTestId("analytics").isVisible()) throw new Error(`${step}: the analytics view is still shown`);

});

function sameCounts(got, want) {
  const a = Object.keys(got).sort(), b = Object.keys(want).sort();
  return JSON.stringify(a) === JSON.stringify(b) && b.every((k) => got[k] === want[k]);
}
