// Builds the example into dist/ (or the directory given as the first
// argument): app.js, one esbuild bundle of src/ with React, TanStack Query
// and @eventbus/client, plus index.html and style.css. It uses the packages
// clients/js installs (npm ci there): the example has no install of its own,
// and @eventbus/client is its source, so the example always shows the client
// as it is in this commit. Serve dist/ with a config.js that sets
// window.eventbusConfig = { url, token }.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const clientDir = resolve(here, '../../clients/js');
const esbuild = createRequire(join(clientDir, 'package.json'))('esbuild');
const out = resolve(process.argv[2] ?? join(here, 'dist'));

mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: [join(here, 'src/main.tsx')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
  alias: { '@eventbus/client': join(clientDir, 'src/index.ts') },
  // React and TanStack Query from clients/js's node_modules, one copy for
  // the app and the hooks alike.
  nodePaths: [join(clientDir, 'node_modules')],
  define: { 'process.env.NODE_ENV': '"production"' },
});
for (const f of ['index.html', 'style.css']) copyFileSync(join(here, f), join(out, f));
console.log(`built ${out}`);
