// Numeric assertions used across the suites.
import * as assert from 'uvu/assert';

type Numeric = ArrayLike<number>;

/** Max |a-b| / (atol + rtol·|b|) must be ≤ 1; the message names the worst element. */
export function assertClose(actual: Numeric, expected: Numeric, { rtol = 1e-5, atol = 1e-6, what = 'values' } = {}): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]), e = Number(expected[i]);
    const ratio = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (!(ratio <= worst) || Number.isNaN(a) !== Number.isNaN(e)) { worst = Number.isNaN(ratio) ? Infinity : ratio; at = i; }
  }
  if (worst > 1) {
    assert.unreachable(`${what}: element ${at} is ${actual[at]}, expected ${expected[at]} (rtol ${rtol}, atol ${atol})`);
  }
}

/**
 * The error thrown by fn (sync or async) must be a LitloraError carrying `code`: every coded error litlora throws,
 * from TypeScript or native code, is one (so each use of this helper checks that too).
 */
export async function assertCode(fn: () => unknown, code: string, messagePart?: string | RegExp): Promise<void> {
  let error: any = null;
  try { await fn(); } catch (e) { error = e; }
  if (!error) assert.unreachable(`expected an error with code ${code}, but nothing was thrown`);
  assert.is(error.code, code, `error code (message: ${error.message})`);
  // By name, not instanceof: uvu runs every suite in one process through tsx, which loads ts/ once through
  // require and again through import() (the CLI loads its commands lazily), so two LitloraError classes exist
  // there. The package itself is ESM only and has one (test/01.native.codes checks instanceof).
  assert.ok(error instanceof Error && error.name === 'LitloraError',
    `expected a LitloraError, got ${error?.constructor?.name}: ${error.message}`);
  if (messagePart) assert.match(error.message, messagePart);
}

export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const rand = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}
