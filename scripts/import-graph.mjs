#!/usr/bin/env node
// The import graph of ts/ (relative imports between litlora's own modules) and the include graph of native/
// (a .h and its .cc as one module), and their cycles. The house rule is that neither has any: a cycle means two
// rooms each need the other, and one of them holds a concept that belongs to the other. test/00.house.test.ts
// runs this; `node scripts/import-graph.mjs` prints the cycles.
//
// Imports are read from the source text (static `import … from '…'`, `export … from '…'`, and `import('…')`);
// `import type` counts too, since a type-only cycle is the same tangle of concepts.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir, isSource = (name) => name.endsWith('.ts') && !name.endsWith('.d.ts')) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path, isSource));
    else if (isSource(name)) out.push(path);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** { 'ts/model/model.ts': ['ts/model/config.ts', …], … } */
export function importGraph(dir = join(root, 'ts')) {
  const graph = {};
  for (const file of sources(dir)) {
    const text = readFileSync(file, 'utf8');
    const deps = new Set();
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      deps.add(relative(root, target));
    }
    graph[relative(root, file)] = [...deps].sort();
  }
  return graph;
}

const INCLUDE = /^\s*#\s*include\s+"([^"]+)"/gm;

/**
 * { 'native/core/pth': ['native/core/pickle', …], … }: which modules (a .h and its .cc together, extension
 * dropped) include which. A quoted include resolves next to the including file, else from native/ (the build's
 * include folder).
 */
export function includeGraph(dir = join(root, 'native')) {
  const moduleOf = (file) => relative(root, file).replace(/\.(h|cc)$/, '');
  const graph = {};
  for (const file of sources(dir, (name) => /\.(h|cc)$/.test(name))) {
    const from = moduleOf(file);
    const deps = new Set(graph[from] ?? []);
    for (const m of readFileSync(file, 'utf8').matchAll(INCLUDE)) {
      const target = [resolve(dirname(file), m[1]), resolve(dir, m[1])].find((p) => existsSync(p));
      if (target && moduleOf(target) !== from) deps.add(moduleOf(target));
    }
    graph[from] = [...deps].sort();
  }
  return graph;
}

/** Every elementary cycle's smallest representative, found by DFS from each node (the graph is small). */
export function cycles(graph) {
  const found = new Map();
  const visit = (start, node, path, onPath) => {
    for (const next of graph[node] ?? []) {
      if (next === start) {
        const cycle = [...path];
        const k = cycle.indexOf([...cycle].sort()[0]);
        const canonical = [...cycle.slice(k), ...cycle.slice(0, k)];
        found.set(canonical.join(' → '), canonical);
      } else if (!onPath.has(next) && next > start) {
        onPath.add(next);
        visit(start, next, [...path, next], onPath);
        onPath.delete(next);
      }
    }
  };
  for (const node of Object.keys(graph).sort()) visit(node, node, [node], new Set([node]));
  return [...found.values()];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let total = 0;
  for (const [graph, what] of [[importGraph(), 'import cycles in ts/'], [includeGraph(), 'include cycles in native/']]) {
    const found = cycles(graph);
    for (const c of found) console.log(`cycle: ${[...c, c[0]].join(' → ')}`);
    console.log(found.length ? `${found.length} ${what}` : `no ${what}`);
    total += found.length;
  }
  process.exit(total ? 1 : 0);
}
