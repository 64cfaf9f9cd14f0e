// Browser test of the monitor's Catalog view (monitor/web/catalog.js), run
// by TestMonitorCatalogInTheBrowser (e2e/browser_catalog_test.go): the
// registered types are listed with their versions, the current one marked,
// the events of the last 24 h per version, a version's JSON Schema on
// request, and the latest event's payload as an example.
//
// Environment: BASE_URL, TOKEN, CHROMIUM (see monitor.test.mjs). Prints
// "DONE" at the end; exit code 0 only when every step passed.
import { env, run, shows, signIn, waiter } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");

await run({ viewport: { width: 1280, height: 900 } }, async ({ page, begin }) => {
  let step;
  const until = waiter(page, shows(page, "the view", "#catalog"));

  step = begin("sign in");
  await signIn(page, baseURL, token);

  step = begin("lead.created: two versions, v2 current, events per version");
  await until(step, () => {
    const box = document.querySelector('[data-testid="catalog-type"][data-type="lead.created"]');
    if (!box) return false;
    const rows = [...box.querySelectorAll('[data-testid="catalog-version"]')];
    const count = (v) => rows.find((r) => r.dataset.version === v)?.querySelector('[data-testid="catalog-version-events"]').textContent;
    return rows.length === 2 && rows[0].dataset.version === "2" && rows[0].children[0].textContent === "v2 (current)" &&
      count("2") === "1" && count("1") === "2" && box.querySelector(".badge").textContent === "v2 current";
  });

  step = begin("the example is the latest event's payload");
  await until(step, () => {
    const pre = document.querySelector('[data-testid="catalog-type"][data-type="lead.created"] [data-testid="catalog-example"]');
    return pre && JSON.parse(pre.textContent).lead?.name === "Ada";
  });

  step = begin("a version's schema unfolds, and stays open across a refresh");
  await page.locator('[data-testid="catalog-type"][data-type="lead.created"] [data-version="2"] summary').click();
  await until(step, () => {
    const pre = document.querySelector('[data-testid="catalog-type"][data-type="lead.created"] [data-version="2"] [data-testid="catalog-schema"]');
    return pre && pre.checkVisibility() && JSON.parse(pre.textContent).required?.[0] === "lead";
  });
  await page.waitForTimeout(11_000); // one refresh of the view (10 s)
  await until("still open after the refresh", () =>
    document.querySelector('[data-testid="catalog-type"][data-type="lead.created"] [data-version="2"] details')?.open === true);

  step = begin("lead.status_updated: one version, no event yet");
  await until(step, () => {
    const box = document.querySelector('[data-testid="catalog-type"][data-type="lead.status_updated"]');
    return box && box.querySelectorAll('[data-testid="catalog-version"]').length === 1 &&
      box.textContent.includes("No event of this type yet.") && !box.querySelector('[data-testid="catalog-example"]');
  });
});
