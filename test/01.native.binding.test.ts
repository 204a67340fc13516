// ts/binding.ts declares the addon's whole surface: what the loaded addon registers is exactly what
// NATIVE_SURFACE lists (which the compiler holds equal to the interfaces), and test-only entry points live
// under `internals`, not beside the product API.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { binding, NATIVE_SURFACE } from '../ts/binding.js';

const sorted = (names: readonly string[]) => [...names].sort();

test('the addon exports exactly the names ts/binding.ts declares', () => {
  assert.equal(sorted(Object.keys(binding())), sorted(NATIVE_SURFACE.exports));
});

test('test-only entry points are the addon\'s `internals`, exactly as declared', () => {
  assert.equal(sorted(Object.keys(binding().internals)), sorted(NATIVE_SURFACE.internals));
  for (const name of NATIVE_SURFACE.internals) {
    assert.not.ok(name in binding(), `${name} is an internal and must not sit beside the product API`);
  }
});

test('each native class has exactly the declared statics and instance members', () => {
  const addon = binding() as unknown as Record<string, Function>;
  for (const [name, { statics, members }] of Object.entries(NATIVE_SURFACE.classes)) {
    const cls = addon[name]!;
    assert.type(cls, 'function', name);
    // A native function's own properties, besides the statics, are those of any sloppy-mode function.
    const own = Object.getOwnPropertyNames(cls).filter((k) => !['length', 'name', 'prototype', 'arguments', 'caller'].includes(k));
    assert.equal(sorted(own), sorted(statics), `${name}'s statics`);
    const proto = Object.getOwnPropertyNames(cls.prototype).filter((k) => k !== 'constructor');
    assert.equal(sorted(proto), sorted(members), `${name}'s instance members`);
  }
});

test.run();
