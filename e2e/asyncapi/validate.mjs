// Parses an AsyncAPI document (YAML or JSON) with @asyncapi/parser, the
// reference implementation, and exits 1 printing every diagnostic of
// severity error (0 in @asyncapi/parser's numbering); warnings are printed
// too but do not fail. Usage: node validate.mjs FILE
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs FILE');
  process.exit(2);
}
const text = await readFile(file, 'utf8');
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  console.log(`${d.severity === 0 ? 'error' : 'warning'} ${d.code}: ${where}: ${d.message}`);
}
if (errors.length > 0 || !document) {
  console.error(`${file}: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ${document.operations().length} operation(s)`);
