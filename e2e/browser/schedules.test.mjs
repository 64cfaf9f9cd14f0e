// Browser test of the monitor's Schedules card, run by
// TestMonitorSchedulesInTheBrowser (e2e/schedule_browser_test.go): the
// schedule is listed with its zone and next run, and the delayed event
// waiting is listed with its type; markup in the data stays text.
//
// Environment: BASE_URL, TOKEN, SCHEDULE, DELAYED_ID, CHROMIUM (see
// monitor.test.mjs). Prints "DONE" at the end; exit code 0 only when every
// step passed.
import { env, run, shows, signIn, waiter } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const scheduleName = env("SCHEDULE");
const delayedId = env("DELAYED_ID");

await run({ viewport: { width: 1280, height: 900 } }, async ({ page, begin }) => {
  let step;
  const until = waiter(page, shows(page, "the card", ".schedules-card"));

  step = begin("sign in");
  await signIn(page, baseURL, token);

  step = begin("the schedule is listed with its zone and a next run");
  await until(step, ({ name }) => {
    const row = [...document.querySelectorAll('[data-testid="schedule"]')].find((r) => r.children[0].textContent === name);
    return row && row.children[1].textContent === "0 3 * * *" && row.children[2].textContent === "Europe/Berlin" &&
      row.querySelector('[data-testid="schedule-next-run"]').textContent !== "–";
  }, { name: scheduleName });

  step = begin("the delayed event is listed");
  await until(step, ({ id }) => {
    const row = [...document.querySelectorAll('[data-testid="delayed-event"]')].find((r) => r.children[3].textContent === id);
    return row && row.children[1].textContent === "reminder.due" &&
      document.querySelector('[data-testid="delayed-state"]').dataset.count === "1";
  }, { id: delayedId });

  step = begin("markup in a schedule's name is text");
  const injected = await page.evaluate(() => document.querySelectorAll(".schedules-card img, .schedules-card b").length);
  if (injected) throw new Error(`${injected} elements made from data`);
});
