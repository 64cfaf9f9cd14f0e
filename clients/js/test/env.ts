// The relay the tests run against and the JWTs they sign in with, from the Go
// test that started it (e2e/jsclient_test.go). Without them the tests fail:
// they do not pass by testing nothing.
import { EventBusClient } from '../src/index.js';

function need(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run these tests through the Go test (go test -run TestJSClient ./e2e), which starts the relay`);
  }
  return v;
}

export const relayURL = need('EVENTBUS_TEST_URL');
/** An admin of organization A. */
export const adminJWT = need('EVENTBUS_TEST_JWT');
export const adminID = need('EVENTBUS_TEST_ADMIN_ID');
export const orgID = need('EVENTBUS_TEST_ORG');
/** An admin of organization B. */
export const otherAdminJWT = need('EVENTBUS_TEST_JWT_OTHER_ORG');
export const otherOrgID = need('EVENTBUS_TEST_OTHER_ORG');
/** A member of organization A who is not an admin. */
export const memberJWT = need('EVENTBUS_TEST_JWT_MEMBER');
/** An event of organization A that fails on every attempt (its type is no NATS subject). */
export const failingID = need('EVENTBUS_TEST_FAILING_ID');

export function client(token: string | undefined = adminJWT): EventBusClient {
  return new EventBusClient({ url: relayURL, token });
}

/** unique returns a name no other test run used, to filter a test's own events by. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** eventually polls fn until it returns a value that is not undefined. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
