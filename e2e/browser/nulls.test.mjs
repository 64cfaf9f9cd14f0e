// Browser test: the Event Bus Monitor shows a row whose nullable columns are
// all NULL (an adopted table may hold such rows): no time ("—", not 1970 or
// year 1), pending, no retries, {} for payload and metadata, in the list and
// in the detail, with no JavaScript error and nothing the page's
// Content-Security-Policy refuses. Run by TestMonitorBrowserRowWithNullColumns
// (e2e/browser_nulls_test.go).
//
// Environment: BASE_URL, TOKEN (EVENTBUS_ADMIN_TOKEN), NULL_ID (the row's id),
// CHROMIUM. Prints DONE and exits 0 when every check passed; else
// "FAIL: <what>" on stderr and exit code 1.
import { env, run, TIMEOUT } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const id = env("NULL_ID");

await run({ locale: "en-GB", timezoneId: "UTC" }, async ({ page, begin }) => {
  begin("a row whose nullable columns are all NULL");
  const problems = [];
  page.on("console", (msg) => { if (/Content Security Policy/i.test(msg.text())) problems.push(msg.text()); });

  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  const row = page.locator(`tr[data-testid="event-row"][data-id="${id}"]`);
  await row.waitFor({ state: "visible" });

  const cells = await row.locator("td").allTextContents();
  const want = { Time: "—", Status: "pending", Retries: "0" };
  const got = { Time: cells[0], Status: cells[4], Retries: cells[5] };
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`row cells ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);

  await row.click();
  await page.getByTestId("detail").waitFor({ state: "visible" });
  await page.waitForFunction((id) => document.getElementById("detail-id").textContent === id, id, { timeout: TIMEOUT });
  const detail = await page.evaluate(() => Object.fromEntries(
    ["detail-created", "detail-processed", "detail-status", "detail-retries", "detail-error", "detail-payload", "detail-metadata"]
      .map((k) => [k, document.getElementById(k).textContent])));
  const wantDetail = {
    "detail-created": "—", "detail-processed": "—", "detail-status": "pending", "detail-retries": "0",
    "detail-error": "—", "detail-payload": "{}", "detail-metadata": "{}",
  };
  for (const [k, v] of Object.entries(wantDetail)) {
    if (detail[k] !== v) problems.push(`${k} shows ${JSON.stringify(detail[k])}, want ${JSON.stringify(v)}`);
  }
  if (problems.length) throw new Error(problems.join("; "));
});
