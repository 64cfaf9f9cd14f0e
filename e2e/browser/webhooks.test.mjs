// Browser test of the monitor's dead letters, run by
// TestMonitorWebhooksInTheBrowser (e2e/browser_webhooks_test.go): an
// endpoint is listed with its failed delivery and the last error; once the
// Go test makes the endpoint answer, "Redeliver failed" gets it delivered
// and the card shows no failure. A failed event's detail offers Redrive;
// once the Go test has fixed the event, Redrive gets it processed.
//
// Environment: BASE_URL, TOKEN, WEBHOOK_ID, EVENT_ID, FAILED_EVENT_ID,
// CHROMIUM (see monitor.test.mjs). Conversation with the Go test:
//   stdout "READY-TO-HEAL" -> stdin "HEALED"
//   stdout "READY-TO-FIX" -> stdin "FIXED"
//   stdout "DONE" at the end; exit code 0 only when every step passed.
import { chromium } from "playwright-core";
import readline from "node:readline";

const TIMEOUT = 30_000;
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const env = (name) => process.env[name] || fail(`environment variable ${name} is not set`);
const log = (msg) => console.error(`[browser] ${msg}`);

const input = readline.createInterface({ input: process.stdin });
const lines = [];
const waiters = [];
input.on("line", (l) => (waiters.length ? waiters.shift()(l) : lines.push(l)));
async function ask(signal, expect) {
  process.stdout.write(`${signal}\n`);
  const line = await new Promise((resolve, reject) => {
    if (lines.length) return resolve(lines.shift());
    const timer = setTimeout(() => reject(new Error(`no answer to ${signal} within ${TIMEOUT} ms`)), TIMEOUT);
    waiters.push((l) => { clearTimeout(timer); resolve(l); });
  });
  if (!line.startsWith(expect)) throw new Error(`answer to ${signal}: got ${JSON.stringify(line)}, want ${expect}`);
}

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const webhookId = env("WEBHOOK_ID");
const eventId = env("EVENT_ID");
const failedEventId = env("FAILED_EVENT_ID");

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
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  const until = async (what, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: TIMEOUT, polling: 100 });
    } catch (err) {
      const seen = await page.evaluate(() => document.getElementById("webhooks")?.innerText).catch((e) => e.message);
      throw new Error(`${what}: not seen within ${TIMEOUT} ms; the card shows ${JSON.stringify(seen)}`);
    }
  };

  step = "sign in";
  log(step);
  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });

  step = "the endpoint is listed with its failed delivery and the last error";
  log(step);
  await until(step, ({ hook, event }) => {
    const box = document.querySelector(`[data-testid="webhook"][data-id="${hook}"]`);
    const row = box?.querySelector('[data-testid="webhook-delivery"]');
    return box && box.querySelector('[data-testid="webhook-failed-count"]').textContent === "1 failed" &&
      row && row.children[1].textContent === event &&
      row.querySelector('[data-testid="webhook-delivery-error"]').textContent === "HTTP 500";
  }, { hook: webhookId, event: eventId });

  step = "Redeliver gets it delivered";
  log(step);
  await ask("READY-TO-HEAL", "HEALED");
  await page.locator(`[data-testid="webhook"][data-id="${webhookId}"] [data-testid="btn-redeliver"]`).click();
  await until(step + ": the card reports the redelivery", ({ hook }) =>
    document.querySelector(`[data-testid="webhook"][data-id="${hook}"] [data-testid="redeliver-result"]`)?.textContent === "1 delivery redelivered",
  { hook: webhookId });
  await until(step + ": no failed delivery left", ({ hook }) =>
    document.querySelector(`[data-testid="webhook"][data-id="${hook}"] [data-testid="webhook-failed-count"]`)?.textContent === "0 failed",
  { hook: webhookId });

  step = "a failed event's detail offers Redrive, a processed one's does not";
  log(step);
  await page.goto(`${baseURL}/crm/events?event=${encodeURIComponent(eventId)}`);
  await page.getByTestId("detail").waitFor({ state: "visible" });
  await until(step + ": the processed event", ({ id }) =>
    document.getElementById("detail-id").textContent === id &&
    document.querySelector('[data-testid="detail-status"]').textContent === "processed" &&
    document.querySelector('[data-testid="btn-redrive"]').hidden, { id: eventId });
  await page.goto(`${baseURL}/crm/events?event=${encodeURIComponent(failedEventId)}`);
  await page.getByTestId("detail").waitFor({ state: "visible" });
  await until(step + ": the failed event", ({ id }) =>
    document.getElementById("detail-id").textContent === id &&
    document.querySelector('[data-testid="detail-status"]').textContent === "failed" &&
    !document.querySelector('[data-testid="btn-redrive"]').hidden, { id: failedEventId });

  step = "Redrive gets the fixed event processed";
  log(step);
  await ask("READY-TO-FIX", "FIXED");
  await page.getByTestId("btn-redrive").click();
  await until(step + ": the detail turns processed, Redrive gone", () =>
    document.querySelector('[data-testid="detail-status"]').textContent === "processed" &&
    document.querySelector('[data-testid="btn-redrive"]').hidden);
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  process.stdout.write("DONE\n");
} catch (err) {
  console.error(`FAIL: ${step}: ${err.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
process.exit(0);
