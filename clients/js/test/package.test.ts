// @vitest-environment node
// (no DOM needed: only the hooks are rendered, in jsdom)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import * as source from '../src/index.js';

// What a CRM installs is dist/, built by tsc (the Go test runs npm run build
// before vitest): it exports what the source does, and its React-free entry
// loads without React.
describe('the built package', () => {
  it('exports the source’s names from dist/index.js', async () => {
    const dist = await import('../dist/index.js');
    expect(Object.keys(dist).sort()).toEqual(Object.keys(source).sort());
    expect(Object.keys(dist)).toEqual(
      expect.arrayContaining([
        'EventBusClient',
        'EventBusError',
        'EventBusProvider',
        'useEvents',
        'usePublishEvent',
        'useProcessPendingEvents',
        'useEventStats',
        'tokenFromSupabase',
      ]),
    );
  });

  it('has a React-free entry, dist/client.js', async () => {
    const client = await import('../dist/client.js');
    expect(Object.keys(client).sort()).toEqual(['EventBusClient', 'EventBusError', 'listQuery', 'tokenFromSupabase']);
    for (const f of ['client.js', 'errors.js', 'types.js']) {
      const imports = [...readFileSync(join(process.cwd(), 'dist', f), 'utf8').matchAll(/from\s+['"]([^'"]+)['"]/g)].map((m) => m[1]);
      expect(imports.every((i) => i!.startsWith('./')), `${f} imports ${imports.join(', ')}`).toBe(true);
    }
  });
});
