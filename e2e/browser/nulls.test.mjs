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
import { chromium } from "playwright-core";

const TIMEOUT = 30_000;
const { BASE_URL: baseURL, TOKEN: token, NULL_ID: id } = process.env;
if (!baseURL || !token || !id) {
  console.error("FAIL: BASE_URL, TOKEN and NULL_ID must be set");
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  timeout: 60_000,
});
const problems = [];
try {
  const page = await (await browser.newContext({ locale: "en-GB", timezoneId: "UTC" })).newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => problems.push(`JavaScript error: ${err}`));
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
  process.stdout.write("DONE\n");
} catch (err) {
  console.error(`FAIL: ${err.message}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
await browser.close();
