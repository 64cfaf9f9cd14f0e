import { defineConfig } from 'vitest/config';

// The tests talk to a real relay (Postgres, NATS) that e2e/jsclient_test.go
// starts; see test/env.ts. One file at a time: the counts of /api/stats are
// the organization's, and the machine is small.
export default defineConfig({
  test: {
    environment: 'jsdom',
    include: ['test/**/*.test.{ts,tsx}'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['verbose'],
  },
});
