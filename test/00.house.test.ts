// The house rules that a test can hold: ts/ has no import cycles (scripts/import-graph.mjs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
// @ts-expect-error: a plain .mjs script without types
import { cycles, importGraph } from '../scripts/import-graph.mjs';

test('the import graph of ts/ has no cycles', () => {
  const graph = importGraph() as Record<string, string[]>;
  assert.ok(Object.keys(graph).length > 40, 'the graph covers ts/');
  assert.ok(graph['ts/model/model.ts'].includes('ts/model/load.ts'), 'relative imports are read');
  assert.equal((cycles(graph) as string[][]).map((c) => c.join(' → ')), []);
});

test.run();
