// What every browser test here shares: Debian's chromium launched the same
// way, the environment and progress helpers, the one-line-each-way
// conversation with the Go test that runs the script, a wait that says what
// the page showed, and the ending: "DONE" on stdout and exit code 0 only when
// every step passed, else "FAIL: <step>: <what>" on stderr and exit code 1.
import { chromium } from "playwright-core";
import readline from "node:readline";

export const TIMEOUT = 30_000; // every wait; the machine is small and CI runs the race detector

export function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

export function env(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set`);
  return v;
}

export const log = (msg) => console.error(`[browser] ${msg}`);

// Lines from the Go test, in order. Read only once a script asks, so that a
// script that never asks does not hold stdin open.
let input;
const lines = [];
const waiters = [];

// ask writes signal on stdout and waits for the Go test's answer line, which
// must start with expect; it returns the rest of the line, trimmed.
export async function ask(signal, expect) {
  if (!input) {
    input = readline.createInterface({ input: process.stdin });
    input.on("line", (l) => (waiters.length ? waiters.shift()(l) : lines.push(l)));
  }
  process.stdout.write(`${signal}\n`);
  const line = await new Promise((resolve, reject) => {
    if (lines.length) return resolve(lines.shift());
    const timer = setTimeout(() => reject(new Error(`no answer to ${signal} from the Go test within ${TIMEOUT} ms`)), TIMEOUT);
    waiters.push((l) => { clearTimeout(timer); resolve(l); });
  });
  if (!line.startsWith(expect)) throw new Error(`answer to ${signal}: got ${JSON.stringify(line)}, want ${expect}…`);
  return line.slice(expect.length).trim();
}

// waiter returns until(what, fn, arg), which waits until fn(arg) is truthy in
// the page; on timeout its error names what was expected and, from
// shown(err), what the page showed instead.
export function waiter(page, shown) {
  return async (what, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: TIMEOUT, polling: 100 });
    } catch (err) {
      throw new Error(`${what}: not seen within ${TIMEOUT} ms; ${await shown(err)}`);
    }
  };
}

// shows describes, for a waiter, the innerText of the first element matching
// selector: "<label> shows <text>".
export const shows = (page, label, selector) => async () =>
  `${label} shows ${JSON.stringify(await page.evaluate((s) => document.querySelector(s)?.innerText, selector).catch((e) => e.message))}`;

// expectParams waits until the page's URL has each of want's query
// parameters (null: not there).
export async function expectParams(page, what, want) {
  await page.waitForFunction((w) => {
    const q = new URL(location.href).searchParams;
    return Object.entries(w).every(([k, v]) => q.get(k) === v);
  }, want, { timeout: TIMEOUT, polling: 100 }).catch(() => { throw new Error(`${what}: URL ${page.url()}, want ${JSON.stringify(want)}`); });
}

// signIn opens the monitor and signs in with token.
export async function signIn(page, baseURL, token) {
  await page.goto(`${baseURL}/crm/events`);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
  await page.locator("#app").waitFor({ state: "visible" });
}

// run launches chromium, opens a page in a context made with contextOptions
// and runs test({ browser, page, begin }); begin(name) logs the step it
// starts and names it in a failure, and returns the name. A JavaScript error in the page fails the
// test. On failure the page is screenshot to FAILURE_SCREENSHOT when set.
// run ends the process.
export async function run(contextOptions, test) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    timeout: 60_000,
  });
  let current = "start";
  const begin = (name) => { current = name; log(name); return name; };
  const pageErrors = [];
  let page;
  try {
    page = await (await browser.newContext(contextOptions)).newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    await test({ browser, page, begin });
    if (pageErrors.length) throw new Error(`JavaScript errors in the page: ${pageErrors.join("; ")}`);
    process.stdout.write("DONE\n");
  } catch (err) {
    console.error(`FAIL: ${current}: ${err.message}`);
    if (pageErrors.length) console.error(`JavaScript errors in the page: ${pageErrors.join("; ")}`);
    if (page && process.env.FAILURE_SCREENSHOT) {
      await page.screenshot({ path: process.env.FAILURE_SCREENSHOT }).catch(() => {});
      console.error(`screenshot of the failure: ${process.env.FAILURE_SCREENSHOT}`);
    }
    await browser.close().catch(() => {});
    process.exit(1);
  }
  await browser.close();
  process.exit(0);
}
