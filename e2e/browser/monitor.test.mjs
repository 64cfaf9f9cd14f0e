// Browser test of the Event Bus Monitor (/crm/events) in headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core; Playwright's own
// browsers are never downloaded). Run by TestMonitorInTheBrowser
// (e2e/browser_test.go), which starts the relay with real Postgres and NATS,
// prepares the data and does the database work the page cannot do.
//
// Environment, set by the Go test:
//   BASE_URL       http://127.0.0.1:<port> of the relay's EVENTBUS_HTTP_ADDR
//   TOKEN          EVENTBUS_ADMIN_TOKEN
//   INITIAL_IDS    comma-separated ids of events delivered before the page opens
//   FAILED_ID      id of the event that failed (invalid event_type)
//   FIXED_TYPE     the event type the Go test gives that event before the redrive
//   SCREENSHOT     where to write the screenshot (PNG, 1280x900)
//   CHROMIUM       the browser binary (default /usr/bin/chromium)
//
// Conversation with the Go test, one line each way:
//   stdout "READY-FOR-LEADS"  -> stdin "LEADS-INSERTED <event id>,<event id>,…"
//   stdout "READY-TO-FIX"     -> stdin "FIXED"
//   stdout "DONE"             at the end; exit code 0 only when every step passed.
// Progress goes to stderr; a failure prints "FAIL: <what>" and exits 1.
import { ask, env, log, run, waiter } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const initialIds = env("INITIAL_IDS").split(",");
const failedId = env("FAILED_ID");
const fixedType = env("FIXED_TYPE");
const screenshot = env("SCREENSHOT");

await run({ viewport: { width: 1280, height: 900 }, locale: "en-GB", timezoneId: "UTC" }, async ({ browser, page, begin }) => {
  let step;
  const cspViolations = []; // Chromium reports each refused load or inline script on the console
  page.on("dialog", (d) => d.accept());
  page.on("console", (msg) => { if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text()); });

  // Waits until fn(arg) is truthy in the page; on timeout, says what was expected
  // and what the page showed.
  const until = waiter(page, async (err) => {
    const seen = await page.evaluate(() => ({
      rows: [...document.querySelectorAll('[data-testid="event-row"]')].map((tr) =>
        `${tr.dataset.id} ${tr.children[1]?.textContent} ${tr.querySelector('[data-testid="event-status"]')?.textContent}`),
      banner: document.getElementById("banner")?.textContent,
      listState: document.getElementById("events-state")?.textContent,
      detailStatus: document.getElementById("detail-status")?.textContent,
      processResult: document.getElementById("process-result")?.textContent,
      url: location.href,
    })).catch((e) => `(page not readable: ${e.message})`);
    return `(${err.message.split("\n")[0]}) page shows ${JSON.stringify(seen, null, 1)}`;
  });

  // The status badge of each id's row is `status`.
  const rowsHaveStatus = ({ ids, status }) => ids.every((id) => {
    const tr = document.querySelector(`tr[data-testid="event-row"][data-id="${id}"]`);
    return tr && tr.querySelector('[data-testid="event-status"]')?.textContent === status;
  });

  step = begin("sign in");
  const resp = await page.goto(`${baseURL}/crm/events`);
  if (!resp || resp.status() !== 200) throw new Error(`GET /crm/events answered ${resp && resp.status()}`);
  // The whole run below works under the page's policy, and no load is refused.
  const csp = resp.headers()["content-security-policy"] || "";
  for (const want of ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"]) {
    if (!csp.includes(want)) throw new Error(`GET /crm/events: Content-Security-Policy ${JSON.stringify(csp)} lacks ${want}`);
  }
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });
  // Marks this document: a reload would drop it.
  await page.evaluate(() => { window.__sameDocument = true; });

  step = begin("events delivered before the page opened are listed as processed");
  await until(step, rowsHaveStatus, { ids: initialIds, status: "processed" });
  await until(step + " (the failed one as failed)", rowsHaveStatus, { ids: [failedId], status: "failed" });
  await until("stat cards count them", ({ processed }) =>
    document.querySelector('[data-testid="stat-processed"]').textContent === String(processed) &&
    document.querySelector('[data-testid="stat-failed"]').textContent === "1", { processed: initialIds.length });
  await until("relay panel: active, NATS connected", () =>
    document.querySelector('[data-testid="relay-state"]').textContent === "active" &&
    document.getElementById("relay-nats").textContent === "connected");

  step = begin("new leads show up without a reload");
  const newIds = (await ask("READY-FOR-LEADS", "LEADS-INSERTED")).split(",");
  await until(step, rowsHaveStatus, { ids: newIds, status: "processed" });
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error("the page was reloaded; rows must arrive by the live refresh");
  const newest = await page.locator('[data-testid="event-row"]').first().getAttribute("data-id");
  if (!newIds.includes(newest)) throw new Error(`the first row is ${newest}, want one of the new events ${newIds} (newest first)`);
  await until("stat cards count the new events", ({ processed }) =>
    document.querySelector('[data-testid="stat-processed"]').textContent === String(processed),
  { processed: initialIds.length + newIds.length });

  step = begin("filter by status failed");
  await page.getByTestId("filter-status").selectOption("failed");
  await until(step + ": only the failed event is listed", ({ id }) => {
    const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
    return rows.length === 1 && rows[0].dataset.id === id &&
      rows[0].querySelector('[data-testid="event-status"]').textContent === "failed";
  }, { id: failedId });
  if (!page.url().includes("status=failed")) throw new Error(`the filter is not kept in the URL: ${page.url()}`);

  step = begin("open the failed event's detail");
  await page.locator(`tr[data-testid="event-row"][data-id="${failedId}"]`).click();
  await page.getByTestId("detail").waitFor({ state: "visible" });
  await until(step + ": status failed, its id, payload and error shown", ({ id }) =>
    document.querySelector('[data-testid="detail-status"]').textContent === "failed" &&
    document.getElementById("detail-id").textContent === id &&
    document.querySelector('[data-testid="detail-payload"]').textContent.includes('"source": "csv-import"') &&
    document.getElementById("detail-error").textContent.length > 1, { id: failedId });
  const error = await page.locator("#detail-error").textContent();
  log(`error shown: ${error}`);

  step = begin("Process pending redelivers the fixed event");
  await ask("READY-TO-FIX", "FIXED");
  await page.getByTestId("btn-process").click();
  await until(step + ": the page reports the hand-back", () =>
    /^[1-9]\d* events? handed back$/.test(document.querySelector('[data-testid="process-result"]').textContent));
  log(`process result: ${await page.getByTestId("process-result").textContent()}`);
  await until(step + ": the open detail turns processed", ({ type }) =>
    document.querySelector('[data-testid="detail-status"]').textContent === "processed" &&
    document.getElementById("detail-type").textContent === type &&
    document.getElementById("detail-processed").textContent !== "—", { type: fixedType });
  await until(step + ": the failed filter lists nothing now", () =>
    document.querySelectorAll('[data-testid="event-row"]').length === 0 &&
    document.getElementById("events-state").textContent === "No events match these filters.");
  await page.getByTestId("filter-status").selectOption("processed");
  await until(step + ": listed under processed", rowsHaveStatus, { ids: [failedId], status: "processed" });

  step = begin("screenshot");
  await page.getByTestId("filter-status").selectOption("");
  await until("all events listed again", rowsHaveStatus,
    { ids: [...initialIds, ...newIds, failedId], status: "processed" });
  await until("stat cards: nothing failed", ({ processed }) =>
    document.querySelector('[data-testid="stat-processed"]').textContent === String(processed) &&
    document.querySelector('[data-testid="stat-failed"]').textContent === "0",
  { processed: initialIds.length + newIds.length + 1 });
  await page.locator("#detail-close").click();
  await page.getByTestId("detail").waitFor({ state: "hidden" });
  if (page.url().includes("event=")) throw new Error(`closing the detail left it in the URL: ${page.url()}`);
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  const selected = await page.locator("tr.selected").count();
  if (selected) throw new Error(`${selected} row(s) still marked selected after closing the detail`);
  await page.screenshot({ path: screenshot, animations: "disabled" });
  log(`screenshot written to ${screenshot}`);

  step = begin("a sign-in link (#token=…) signs a new session in and leaves no token in the address bar");
  const linked = await browser.newPage();
  await linked.goto(`${baseURL}/crm/events#token=${encodeURIComponent(token)}`);
  await linked.locator("#app").waitFor({ state: "visible" });
  if (linked.url().includes("token")) throw new Error(`the token is still in the URL: ${linked.url()}`);
  await linked.close();

  if (cspViolations.length) throw new Error(`Content-Security-Policy violations: ${cspViolations.join("; ")}`);
});
