// The house rules that a test can hold: ts/ has no import cycles and native/ no include cycles
// (scripts/import-graph.mjs); libtorch-version switches live only in native/core/compat.h; dtype names are
// named in one place (native/core/dtype.h).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
// @ts-expect-error: a plain .mjs script without types
import { cycles, importGraph, includeGraph } from '../scripts/import-graph.mjs';

test('the import graph of ts/ has no cycles', () => {
  const graph = importGraph() as Record<string, string[]>;
  assert.ok(Object.keys(graph).length > 40, 'the graph covers ts/');
  assert.ok(graph['ts/model/model.ts'].includes('ts/model/load.ts'), 'relative imports are read');
  assert.equal((cycles(graph) as string[][]).map((c) => c.join(' → ')), []);
});

test('the include graph of native/ has no cycles (a .h and its .cc are one module)', () => {
  const graph = includeGraph() as Record<string, string[]>;
  assert.ok(Object.keys(graph).length > 30, 'the graph covers native/');
  assert.ok(graph['native/core/tensorfile'].includes('native/core/pth'), 'includes next to the file are read');
  assert.ok(graph['native/tensor_wrap'].includes('native/core/tensorfile'), 'includes from native/ are read');
  assert.equal((cycles(graph) as string[][]).map((c) => c.join(' → ')), []);
});

// native/'s sources, as { 'native/core/train.cc': text }.
function nativeSources(dir = join(packageRoot, 'native')): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) Object.assign(out, nativeSources(path));
    else if (/\.(h|cc|cu)$/.test(name)) out[relative(packageRoot, path)] = readFileSync(path, 'utf8');
  }
  return out;
}

test('libtorch-version switches live only in native/core/compat.h', () => {
  const switches = /TORCH_VERSION|LITLORA_TORCH_AT_LEAST|__has_include|torch\/version\.h/;
  const found = Object.entries(nativeSources()).filter(([file, text]) => file !== 'native/core/compat.h' && switches.test(text));
  assert.equal(found.map(([file]) => file), []);
});

test('dtypeName is defined once, in native/core/dtype.h', () => {
  const definition = /std::string\s+dtypeName\s*\([^)]*\)\s*\{/;
  const found = Object.entries(nativeSources()).filter(([, text]) => definition.test(text)).map(([file]) => file);
  assert.equal(found, ['native/core/dtype.h']);
});

test.run();
