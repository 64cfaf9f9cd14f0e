// Browser test of the monitor's Catalog view (monitor/web/catalog.js), run
// by TestMonitorCatalogInTheBrowser (e2e/browser_catalog_test.go): the
// registered types are listed with their versions, the current one marked,
// the events of the last 24 h per version, a version's JSON Schema on
// request, and the latest event's payload as an example.
//
// Environment: BASE_URL, TOKEN, CHROMIUM (see monitor.test.mjs). Prints
// "DONE" at the end; exit code 0 only when every step passed.
import { chromium } from "playwright-core";

const TIMEOUT = 30_000;
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const env = (name) => process.env[name] || fail(`environment variable ${name} is not set`);
const log = (msg) => console.error(`[browser] ${msg}`);

const baseURL = env("BASE_URL");
const token = env("TOKEN");

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
      const seen = await page.evaluate(() => document.getElementById("catalog")?.innerText).catch((e) => e.message);
      throw new Error(`${what}: not seen within ${TIMEOUT} ms; the view shows ${JSON.stringify(seen)}`);
    }
  };

  step = "sign in";
  log(step);
  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });

  step = "lead.created: two versions, v2 current, events per version";
  log(step);
  await until(step, () => {
    const box = document.querySelector('[data-testid="catalog-type"][data-type="lead.created"]');
    if (!box) return false;
    const rows = [...box.querySelectorAll('[data-testid="catalog-version"]')];
    const count = (v) => rows.find((r) => r.dataset.version === v)?.querySelector('[data-testid="catalog-version-events"]').textContent;
    return rows.length === 2 && rows[0].dataset.version === "2" && rows[0].children[0].textContent === "v2 (current)" &&
      count("2") === "1" && count("1") === "2" && box.querySelector(".badge").textContent === "v2 current";
  });

  step = "the example is the latest event's payload";
  log(step);
  await until(step, () => {
    const pre = document.querySelector('[data-testid="catalog-type"][data-type="lead.created"] [data-testid="catalog-example"]');
    return pre && JSON.parse(pre.textContent).lead?.name === "Ada";
  });

  step = "a version's schema unfolds, and stays open across a refresh";
  log(step);
  await page.locator('[data-testid="catalog-type"][data-type="lead.created"] [data-version="2"] summary').click();
  await until(step, () => {
    const pre = document.querySelector('[data-testid="catalog-type"][data-type="lead.created"] [data-version="2"] [data-testid="catalog-schema"]');
    return pre && pre.checkVisibility() && JSON.parse(pre.textContent).required?.[0] === "lead";
  });
  await page.waitForTimeout(11_000); // one refresh of the view (10 s)
  await until("still open after the refresh", () =>
    document.querySelector('[data-testid="catalog-type"][data-type="lead.created"] [data-version="2"] details')?.open === true);

  step = "lead.status_updated: one version, no event yet";
  log(step);
  await until(step, () => {
    const box = document.querySelector('[data-testid="catalog-type"][data-type="lead.status_updated"]');
    return box && box.querySelectorAll('[data-testid="catalog-version"]').length === 1 &&
      box.textContent.includes("No event of this type yet.") && !box.querySelector('[data-testid="catalog-example"]');
  });
  if (pageErrors.length) throw new Error(`errors on the page: ${pageErrors.join("; ")}`);
  console.log("DONE");
} catch (err) {
  console.error(`FAIL at step "${step}": ${err.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
