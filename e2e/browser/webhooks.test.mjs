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
import { ask, env, run, shows, signIn, waiter } from "./harness.mjs";

const baseURL = env("BASE_URL");
const token = env("TOKEN");
const webhookId = env("WEBHOOK_ID");
const eventId = env("EVENT_ID");
const failedEventId = env("FAILED_EVENT_ID");

await run({ viewport: { width: 1280, height: 900 } }, async ({ page, begin }) => {
  let step;
  const until = waiter(page, shows(page, "the card", "#webhooks"));

  step = begin("sign in");
  await signIn(page, baseURL, token);

  step = begin("the endpoint is listed with its failed delivery and the last error");
  await until(step, ({ hook, event }) => {
    const box = document.querySelector(`[data-testid="webhook"][data-id="${hook}"]`);
    const row = box?.querySelector('[data-testid="webhook-delivery"]');
    return box && box.querySelector('[data-testid="webhook-failed-count"]').textContent === "1 failed" &&
      row && row.children[1].textContent === event &&
      row.querySelector('[data-testid="webhook-delivery-error"]').textContent === "HTTP 500";
  }, { hook: webhookId, event: eventId });

  step = begin("Redeliver gets it delivered");
  await ask("READY-TO-HEAL", "HEALED");
  await page.locator(`[data-testid="webhook"][data-id="${webhookId}"] [data-testid="btn-redeliver"]`).click();
  await until(step + ": the card reports the redelivery", ({ hook }) =>
    document.querySelector(`[data-testid="webhook"][data-id="${hook}"] [data-testid="redeliver-result"]`)?.textContent === "1 delivery redelivered",
  { hook: webhookId });
  await until(step + ": no failed delivery left", ({ hook }) =>
    document.querySelector(`[data-testid="webhook"][data-id="${hook}"] [data-testid="webhook-failed-count"]`)?.textContent === "0 failed",
  { hook: webhookId });

  step = begin("a failed event's detail offers Redrive, a processed one's does not");
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

  step = begin("Redrive gets the fixed event processed");
  await ask("READY-TO-FIX", "FIXED");
  await page.getByTestId("btn-redrive").click();
  await until(step + ": the detail turns processed, Redrive gone", () =>
    document.querySelector('[data-testid="detail-status"]').textContent === "processed" &&
    document.querySelector('[data-testid="btn-redrive"]').hidden);
});
