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
import { env, log, run, waiter } from "./harness.mjs";

const baseURL = env("BASE_URL");
const eventId = env("EVENT_ID");
const otherEventId = env("OTHER_EVENT_ID");
const failingId = env("FAILING_ID");

await run({ viewport: { width: 1100, height: 700 } }, async ({ page, begin }) => {
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(`console: ${m.text()}`));
  const until = waiter(page, async () =>
    `the page shows ${JSON.stringify(await page.evaluate(() => document.body.innerText).catch((e) => e.message))}`);
  const stat = (name) => page.$eval(`[data-stat="${name}"] b`, (b) => Number(b.textContent));

  begin("open the app");
  await page.goto(baseURL);
  await until("the organization's event, processed",
    (id) => document.querySelector(`#events tr[data-id="${id}"]`)?.dataset.status === "processed", eventId);
  if (await page.$(`#events tr[data-id="${otherEventId}"]`)) throw new Error("another organization's event is listed");
  await until("the stats", () => /^\d+$/.test(document.querySelector('[data-stat="total"] b')?.textContent ?? ""));
  const total = await stat("total");
  const processed = await stat("processed");
  log(`stats: total ${total}, processed ${processed}`);

  begin("publish with the button");
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

  begin("process pending");
  await until("the failing event, failed",
    (id) => document.querySelector(`#events tr[data-id="${id}"]`)?.dataset.status === "failed", failingId);
  await page.click("#process");
  await until("the hand-back count", () => document.querySelector("[data-handed-back]"));
  const handedBack = Number(await page.$eval("[data-handed-back]", (el) => el.dataset.handedBack));
  if (!(handedBack >= 1)) throw new Error(`handed back ${handedBack}, want at least the failing event`);

  begin("filter by status");
  await page.selectOption("#status", "processed");
  await until("only processed events, the published one among them", (id) => {
    const rows = [...document.querySelectorAll("#events tbody tr")];
    return rows.some((r) => r.dataset.id === id) && rows.every((r) => r.dataset.status === "processed");
  }, published);

  if (consoleErrors.length) throw new Error(`the page reported errors: ${consoleErrors.join("; ")}`);
  await page.selectOption("#status", "");
  await until("all events again", (id) => document.querySelector(`#events tr[data-id="${id}"]`), failingId);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
});
