// Browser test of the monitor's search, run by TestSearchAndAnalyticsInTheBrowser
// (e2e/search_browser_test.go): filtering by payload and by text lists
// exactly the matching events and says how many; the filter is in the URL;
// Back restores the filter before, Forward the one after; a payload that is
// no JSON object is not applied.
//
// Environment: BASE_URL, TOKEN, CHROMIUM, CSV_IDS (the events whose payload
// holds {"source": "csv"}), PAY1_IDS (the events of aggregate pay-1),
// CSV_ADA_ID (the one csv event of first_name Ada), SCREENSHOT.
// stdout "DONE" at the end; exit code 0 only when every step passed.
import { chromium } from "playwright-core";

const TIMEOUT = 30_000;
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const env = (name) => process.env[name] || fail(`environment variable ${name} is not set`);
const log = (msg) => console.error(`[browser] ${msg}`);

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const csvIDs = env("CSV_IDS").split(",");
const pay1IDs = env("PAY1_IDS").split(",");
const csvAdaID = env("CSV_ADA_ID");
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
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 }, locale: "en-US", timezoneId: "UTC" })).newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  const rowIDs = () => page.evaluate(() => [...document.querySelectorAll('[data-testid="event-row"]')].map((r) => r.dataset.id));
  // The table lists exactly ids (any order: the Go test checked newest
  // first through the API) and the count says how many.
  const expectRows = async (what, ids) => {
    try {
      await page.waitForFunction((want) => {
        const got = [...document.querySelectorAll('[data-testid="event-row"]')].map((r) => r.dataset.id).sort();
        const count = document.querySelector('[data-testid="events-count"]');
        return JSON.stringify(got) === JSON.stringify([...want].sort()) && count.dataset.matched === String(want.length) &&
          count.textContent === `${want.length} ${want.length === 1 ? "event matches" : "events match"}`;
      }, ids, { timeout: TIMEOUT, polling: 100 });
    } catch {
      const count = await page.getByTestId("events-count").textContent();
      throw new Error(`${what}: want rows ${JSON.stringify(ids)}, the table shows ${JSON.stringify(await rowIDs())}, the count says ${JSON.stringify(count)}`);
    }
  };
  const param = (name) => new URL(page.url()).searchParams.get(name);
  const expectParams = async (what, want) => {
    await page.waitForFunction((w) => {
      const q = new URL(location.href).searchParams;
      return Object.entries(w).every(([k, v]) => q.get(k) === v);
    }, want, { timeout: TIMEOUT, polling: 100 }).catch(() => { throw new Error(`${what}: URL ${page.url()}, want ${JSON.stringify(want)}`); });
  };

  step = "sign in";
  log(step);
  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length > 0);

  step = "filter by payload";
  log(step);
  await page.getByTestId("filter-payload").fill('{"source": "csv"}');
  await expectRows(step, csvIDs);
  await expectParams(step, { payload: '{"source": "csv"}' });

  step = "payload and text together";
  log(step);
  await page.getByTestId("filter-q").fill("lead-");
  await page.getByTestId("filter-payload").fill('{"source": "csv", "first_name": "Ada"}');
  await expectRows(step, [csvAdaID]);
  await expectParams(step, { payload: '{"source": "csv", "first_name": "Ada"}', q: "lead-" });

  step = "filter by text alone";
  log(step);
  await page.getByTestId("filter-payload").fill("");
  await page.getByTestId("filter-q").fill("PAY-1");
  await expectRows(step, pay1IDs);
  await expectParams(step, { q: "PAY-1", payload: null });
  await page.screenshot({ path: screenshot, fullPage: false });

  step = "Back restores the payload and text filter";
  log(step);
  await page.goBack();
  await expectParams(step, { payload: '{"source": "csv", "first_name": "Ada"}', q: "lead-" });
  await expectRows(step, [csvAdaID]);
  if (await page.getByTestId("filter-payload").inputValue() !== '{"source": "csv", "first_name": "Ada"}') throw new Error(`${step}: the payload field was not restored`);
  if (await page.getByTestId("filter-q").inputValue() !== "lead-") throw new Error(`${step}: the text field was not restored`);

  step = "Forward restores the text filter";
  log(step);
  await page.goForward();
  await expectParams(step, { q: "PAY-1", payload: null });
  await expectRows(step, pay1IDs);

  step = "a shared URL opens with its filter";
  log(step);
  const shared = `${baseURL}/crm/events?payload=${encodeURIComponent('{"source": "csv"}')}`;
  await page.goto(shared);
  await expectRows(step, csvIDs);
  if (await page.getByTestId("filter-payload").inputValue() !== '{"source": "csv"}') throw new Error(`${step}: the payload field is not filled`);

  step = "a payload that is no JSON object is not applied";
  log(step);
  const before = page.url();
  await page.getByTestId("filter-payload").fill('{"source": ');
  await page.waitForFunction(() => document.querySelector('[data-testid="filter-payload-hint"]').textContent.startsWith("Not a JSON object"));
  await page.waitForTimeout(600); // longer than the filter's debounce: nothing may happen
  if (page.url() !== before) throw new Error(`${step}: the URL changed to ${page.url()}`);
  await expectRows(step, csvIDs);
  if (param("payload") !== '{"source": "csv"}') throw new Error(`${step}: payload param ${param("payload")}`);

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  process.stdout.write("DONE\n");
} catch (err) {
  console.error(`FAIL: ${step}: ${err.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
process.exit(0);
