// Browser test of the monitor's Schedules card, run by
// TestMonitorSchedulesInTheBrowser (e2e/schedule_browser_test.go): the
// schedule is listed with its zone and next run, and the delayed event
// waiting is listed with its type; markup in the data stays text.
//
// Environment: BASE_URL, TOKEN, SCHEDULE, DELAYED_ID, CHROMIUM (see
// monitor.test.mjs). Prints "DONE" at the end; exit code 0 only when every
// step passed.
import { chromium } from "playwright-core";

const TIMEOUT = 30_000;
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const env = (name) => process.env[name] || fail(`environment variable ${name} is not set`);
const log = (msg) => console.error(`[browser] ${msg}`);

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const scheduleName = env("SCHEDULE");
const delayedId = env("DELAYED_ID");

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
      const seen = await page.evaluate(() => document.querySelector(".schedules-card")?.innerText).catch((e) => e.message);
      throw new Error(`${what}: not seen within ${TIMEOUT} ms; the card shows ${JSON.stringify(seen)}`);
    }
  };

  step = "sign in";
  log(step);
  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });

  step = "the schedule is listed with its zone and a next run";
  log(step);
  await until(step, ({ name }) => {
    const row = [...document.querySelectorAll('[data-testid="schedule"]')].find((r) => r.children[0].textContent === name);
    return row && row.children[1].textContent === "0 3 * * *" && row.children[2].textContent === "Europe/Berlin" &&
      row.querySelector('[data-testid="schedule-next-run"]').textContent !== "–";
  }, { name: scheduleName });

  step = "the delayed event is listed";
  log(step);
  await until(step, ({ id }) => {
    const row = [...document.querySelectorAll('[data-testid="delayed-event"]')].find((r) => r.children[3].textContent === id);
    return row && row.children[1].textContent === "reminder.due" &&
      document.querySelector('[data-testid="delayed-state"]').dataset.count === "1";
  }, { id: delayedId });

  step = "markup in a schedule's name is text";
  log(step);
  const injected = await page.evaluate(() => document.querySelectorAll(".schedules-card img, .schedules-card b").length);
  if (injected) throw new Error(`${injected} elements made from data`);
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  process.stdout.write("DONE\n");
} catch (err) {
  console.error(`FAIL: ${step}: ${err.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
process.exit(0);
