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
import { env, expectParams, run, signIn, TIMEOUT } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const csvIDs = env("CSV_IDS").split(",");
const pay1IDs = env("PAY1_IDS").split(",");
const csvAdaID = env("CSV_ADA_ID");
const screenshot = env("SCREENSHOT");

await run({ viewport: { width: 1280, height: 1000 }, locale: "en-US", timezoneId: "UTC" }, async ({ page, begin }) => {
  let step;
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

  step = begin("sign in");
  await signIn(page, baseURL, token);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length > 0);

  step = begin("filter by payload");
  await page.getByTestId("filter-payload").fill('{"source": "csv"}');
  await expectRows(step, csvIDs);
  await expectParams(page, step, { payload: '{"source": "csv"}' });

  step = begin("payload and text together");
  await page.getByTestId("filter-q").fill("lead-");
  await page.getByTestId("filter-payload").fill('{"source": "csv", "first_name": "Ada"}');
  await expectRows(step, [csvAdaID]);
  await expectParams(page, step, { payload: '{"source": "csv", "first_name": "Ada"}', q: "lead-" });

  step = begin("filter by text alone");
  await page.getByTestId("filter-payload").fill("");
  await page.getByTestId("filter-q").fill("PAY-1");
  await expectRows(step, pay1IDs);
  await expectParams(page, step, { q: "PAY-1", payload: null });
  await page.screenshot({ path: screenshot, fullPage: false });

  step = begin("Back restores the payload and text filter");
  await page.goBack();
  await expectParams(page, step, { payload: '{"source": "csv", "first_name": "Ada"}', q: "lead-" });
  await expectRows(step, [csvAdaID]);
  if (await page.getByTestId("filter-payload").inputValue() !== '{"source": "csv", "first_name": "Ada"}') throw new Error(`${step}: the payload field was not restored`);
  if (await page.getByTestId("filter-q").inputValue() !== "lead-") throw new Error(`${step}: the text field was not restored`);

  step = begin("Forward restores the text filter");
  await page.goForward();
  await expectParams(page, step, { q: "PAY-1", payload: null });
  await expectRows(step, pay1IDs);

  step = begin("a shared URL opens with its filter");
  const shared = `${baseURL}/crm/events?payload=${encodeURIComponent('{"source": "csv"}')}`;
  await page.goto(shared);
  await expectRows(step, csvIDs);
  if (await page.getByTestId("filter-payload").inputValue() !== '{"source": "csv"}') throw new Error(`${step}: the payload field is not filled`);

  step = begin("a payload that is no JSON object is not applied");
  const before = page.url();
  await page.getByTestId("filter-payload").fill('{"source": ');
  await page.waitForFunction(() => document.querySelector('[data-testid="filter-payload-hint"]').textContent.startsWith("Not a JSON object"));
  await page.waitForTimeout(600); // longer than the filter's debounce: nothing may happen
  if (page.url() !== before) throw new Error(`${step}: the URL changed to ${page.url()}`);
  await expectRows(step, csvIDs);
  if (param("payload") !== '{"source": "csv"}') throw new Error(`${step}: payload param ${param("payload")}`);

});
