// Browser test of the React example app (examples/react), run by
// TestReactExampleInTheBrowser (e2e/jsclient_test.go): the app, built on
// @eventbus/client's hooks, is served with the relay's /api behind the same
// origin and signed in as an organization's admin. It lists the
// organization's event (and not another organization's), shows the 24 h
// stats, publishes an event with its button and shows it processed, hands
// the failing event back with "Process pending", and filters by status.
//
// Environment: BASE_URL, EVENT_ID (an event of the admin's organization,
// processed), OTHER_EVENT_ID (another organization's), FAILING_ID, CHROMIUM,
// SCREENSHOT. Stdout: "PUBLISHED <id>", then "DONE"; exit code 0 only when
// every step passed.
import { chromium } from "playwright-core";

const TIMEOUT = 30_000;
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const env = (name) => process.env[name] || fail(`environment variable ${name} is not set`);
const log = (msg) => console.error(`[browser] ${msg}`);

const baseURL = env("BASE_URL");
const eventId = env("EVENT_ID");
const otherEventId = env("OTHER_EVENT_ID");
const failingId = env("FAILING_ID");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 60_000,
});
let step = "start";
const pageErrors = [];
let page;
try {
  page = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (m) => m.type() === "error" && pageErrors.push(`console: ${m.text()}`));
  const until = async (what, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: TIMEOUT, polling: 100 });
    } catch {
      const seen = await page.evaluate(() => document.body.innerText).catch((e) => e.message);
      throw new Error(`${what}: not seen within ${TIMEOUT} ms; the page shows ${JSON.stringify(seen)}`);
    }
  };
  const stat = (name) => page.$eval(`[data-stat="${name}"] b`, (b) => Number(b.textContent));

  step = "open the app";
  await page.goto(baseURL);
  await until("the organization's event, processed",
    (id) => document.querySelector(`#events tr[data-id="${id}"]`)?.dataset.status === "processed", eventId);
  if (await page.$(`#events tr[data-id="${otherEventId}"]`)) throw new Error("another organization's event is listed");
  await until("the stats", () => /^\d+$/.test(document.querySelector('[data-stat="total"] b')?.textContent ?? ""));
  const total = await stat("total");
  const processed = await stat("processed");
  log(`stats: total ${total}, processed ${processed}`);

  step = "publish with the button";
  await page.click("#publish");
  await until("the published id", () => document.querySelector("[data-published]"));
  const published = await page.$eval("[data-published]", (el) => el.dataset.published);
  log(`published ${published}`);
  await until("the published event, processed",
    (id) => document.querySelector(`#events tr[data-id="${id}"]`)?.dataset.status === "processed", published);
  const row = await page.$eval(`#events tr[data-id="${published}"]`, (tr) => tr.innerText);
  if (!row.includes("example.clicked") || !row.includes("example/click-1")) throw new Error(`the new row reads ${JSON.stringify(row)}`);
  await until("the stats counting it", ([t, p]) =>
    Number(document.querySelector('[data-stat="total"] b')?.textContent) === t + 1 &&
    Number(document.querySelector('[data-stat="processed"] b')?.textContent) === p + 1, [total, processed]);
  process.stdout.write(`PUBLISHED ${published}\n`);

  step = "process pending";
  await until("the failing event, failed",
    (id) => document.querySelector(`#events tr[data-id="${id}"]`)?.dataset.status === "failed", failingId);
  await page.click("#process");
  await until("the hand-back count", () => document.querySelector("[data-handed-back]"));
  const handedBack = Number(await page.$eval("[data-handed-back]", (el) => el.dataset.handedBack));
  if (!(handedBack >= 1)) throw new Error(`handed back ${handedBack}, want at least the failing event`);

  step = "filter by status";
  await page.selectOption("#status", "processed");
  await until("only processed events, the published one among them", (id) => {
    const rows = [...document.querySelectorAll("#events tbody tr")];
    return rows.some((r) => r.dataset.id === id) && rows.every((r) => r.dataset.status === "processed");
  }, published);

  if (pageErrors.length) throw new Error(`the page reported errors: ${pageErrors.join("; ")}`);
  await page.selectOption("#status", "");
  await until("all events again", (id) => document.querySelector(`#events tr[data-id="${id}"]`), failingId);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  process.stdout.write("DONE\n");
} catch (err) {
  if (page && process.env.FAILURE_SCREENSHOT) await page.screenshot({ path: process.env.FAILURE_SCREENSHOT }).catch(() => {});
  console.error(`FAIL at step "${step}": ${err.message}${pageErrors.length ? `\npage errors: ${pageErrors.join("; ")}` : ""}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
