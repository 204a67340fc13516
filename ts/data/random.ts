// Seeded randomness for the data pipeline, bit-compatible with PyTorch's CPU generator where litgpt uses it.
//
// litgpt splits a single JSON file with `random_split(data, [1-f, f], Generator().manual_seed(seed))` and shuffles
// the train loader with `DataLoader(shuffle=True, generator=Generator().manual_seed(seed))`. Both come down to
// torch's CPU generator (a 32-bit Mersenne Twister, mt19937) and its `randperm` kernel, whose algorithm is a
// plain forward Fisher–Yates with `random() % (n - i)`. Re-implementing those two pieces gives the same split and
// the same per-epoch order as litgpt for the same seed (checked against PyTorch in test/07.data.split.test.ts).

/** mt19937 as torch seeds it (`manual_seed(s)` uses the low 32 bits of s for the state). */
export class TorchGenerator {
  private readonly state = new Uint32Array(624);
  private index = 624;

  constructor(seed: number | bigint) {
    const s = BigInt.asUintN(64, BigInt(seed));
    this.state[0] = Number(s & 0xffffffffn);
    for (let i = 1; i < 624; i++) {
      const prev = this.state[i - 1]! ^ (this.state[i - 1]! >>> 30);
      // 1812433253 * prev + i, modulo 2^32, without losing precision.
      this.state[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** The next 32-bit output (torch's `CPUGeneratorImpl::random()`). */
  random(): number {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Two 32-bit outputs, the first as the high half (torch's `random64()`). */
  random64(): bigint {
    const hi = this.random();
    const lo = this.random();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  private twist(): void {
    const mt = this.state;
    for (let i = 0; i < 624; i++) {
      const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % 624]! & 0x7fffffff);
      let next = mt[(i + 397) % 624]! ^ (y >>> 1);
      if (y & 1) next ^= 0x9908b0df;
      mt[i] = next >>> 0;
    }
    this.index = 0;
  }
}

/** `torch.randperm(n, generator=g)` on CPU (n < 2^32 / 20, the branch every dataset here takes). */
export function randperm(n: number, generator: TorchGenerator): number[] {
  if (n >= 0xffffffff / 20) throw new RangeError(`randperm: n = ${n} is too large`);
  const r = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n - 1; i++) {
    const z = generator.random() % (n - i);
    const t = r[i]!;
    r[i] = r[i + z]!;
    r[i + z] = t;
  }
  return r;
}

/**
 * Sizes of `random_split(data, [1 - f, f])`: floor of each fraction, then the remainder handed out round-robin
 * from the first subset (torch.utils.data.random_split).
 */
export function splitLengths(n: number, valFraction: number): [train: number, val: number] {
  const lengths = [Math.floor(n * (1 - valFraction)), Math.floor(n * valFraction)];
  const remainder = n - lengths[0]! - lengths[1]!;
  for (let i = 0; i < remainder; i++) lengths[i % 2]! += 1;
  return [lengths[0]!, lengths[1]!];
}

/** Indices of the train and validation subsets, as litgpt's `random_split(..., manual_seed(seed))` picks them. */
export function randomSplit(n: number, valFraction: number, seed: number): { train: number[]; val: number[] } {
  const [trainLength] = splitLengths(n, valFraction);
  const perm = randperm(n, new TorchGenerator(seed));
  return { train: perm.slice(0, trainLength), val: perm.slice(trainLength) };
}

/**
 * The order in which a `DataLoader(shuffle=True, generator=manual_seed(seed))` visits n samples in each epoch.
 * Each pass over the loader first draws one int64 base seed from the loader's generator (`_BaseDataLoaderIter`),
 * then the RandomSampler draws `randperm(n)` from the same generator, and, once the pass is exhausted, one more
 * `randperm(n)` whose first `num_samples % n` (= 0) entries it yields; state carries over between epochs.
 */
export class EpochShuffler {
  private readonly generator: TorchGenerator;
  private readonly orders: number[][] = [];

  constructor(readonly size: number, readonly seed: number) {
    this.generator = new TorchGenerator(seed);
  }

  /** Order of epoch `epoch` (0-based); epochs are computed in sequence and cached. */
  order(epoch: number): number[] {
    if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be an integer ≥ 0, got ${epoch}`);
    while (this.orders.length <= epoch) {
      this.generator.random64();
      this.orders.push(randperm(this.size, this.generator));
      randperm(this.size, this.generator);
    }
    return this.orders[epoch]!;
  }
}

/** One rank's part of a data set in data-parallel training (the sampler Lightning Fabric puts on every loader). */
export interface Shard {
  rank: number;
  worldSize: number;
  /** The run's seed (Fabric's PL_GLOBAL_SEED, which litgpt sets with `fabric.seed_everything(seed)`). */
  seed: number;
}

/**
 * The indices rank `shard.rank` visits in epoch `epoch` under PyTorch's `DistributedSampler(shuffle, seed,
 * drop_last=False)`: `randperm(n)` from a generator seeded with `seed + epoch` (shuffle) or 0..n−1, padded by
 * repeating its start up to a multiple of the world size (every rank gets as many), then every worldSize-th
 * index from position rank. Consecutive global batches of a world of W ranks are thus the same positions of the
 * permutation whatever W is.
 */
export function distributedOrder(n: number, epoch: number, shard: Shard, shuffle: boolean): number[] {
  const { rank, worldSize, seed } = shard;
  let indices = shuffle ? randperm(n, new TorchGenerator(seed + epoch)) : Array.from({ length: n }, (_, i) => i);
  const total = Math.ceil(n / worldSize) * worldSize;
  const padding = total - n;
  if (padding > 0 && n > 0) {
    const repeated: number[] = [];
    // Element by element: push(...indices) overflows V8's stack past ~120k samples.
    for (let i = 0; repeated.length < padding; i = (i + 1) % indices.length) repeated.push(indices[i]!);
    indices = indices.concat(repeated.slice(0, padding));
  }
  const out: number[] = [];
  for (let i = rank; i < indices.length; i += worldSize) out.push(indices[i]!);
  return out;
}
