// Data-parallel training: which rank this process is (the Trainer's `distributed` option, torchrun's or Slurm's
// environment), and the c10d process group it joins (native/core/distributed: a TCPStore hosted by rank 0, Gloo on
// CPU, NCCL on CUDA). The trainer averages LoRA gradients through it inside each optimizer step, sums the
// validation loss and token counts, and waits on it around rank 0's writes.
import { binding, type NativeProcessGroup } from '../binding.js';
import { fail } from '../errors.js';
import type { Shard } from '../data/random.js';

export interface DistributedOptions {
  /** This process's rank, 0 ≤ rank < worldSize (torchrun's RANK). */
  rank: number;
  /** Number of processes (torchrun's WORLD_SIZE). */
  worldSize: number;
  /** Rank on this machine (LOCAL_RANK): the CUDA device index with NCCL. Default: rank. */
  localRank?: number;
  /** Where rank 0 hosts the rendezvous (MASTER_ADDR). Default 127.0.0.1. */
  masterAddr?: string;
  /** Its port (MASTER_PORT). Default 29500, torchrun's. */
  masterPort?: number;
  /** How long a rank waits for the others, in joining and in every collective, before ERR_DISTRIBUTED. Default 30 minutes (torch.distributed's). */
  timeoutMs?: number;
  /** 'gloo' (CPU tensors; the default) or 'nccl' (CUDA builds). */
  backend?: 'gloo' | 'nccl';
  /**
   * Average each bucket of LoRA gradients while the backward still computes the earlier layers' (PyTorch DDP's
   * overlap); false: all buckets after the backward. Both give the same adapter. Default true.
   */
  overlap?: boolean;
  /**
   * Largest gradient bucket, in bytes. Default 1 MiB (DDP's first bucket): LoRA gradients are small, and DDP's
   * 25 MiB would hold a 7B model's q,v adapters in one bucket that starts only once the whole backward is done.
   */
  bucketBytes?: number;
}

export const DEFAULT_MASTER_PORT = 29500;
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;
export const DEFAULT_BUCKET_BYTES = 1 << 20;

function intFrom(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) fail('ERR_ARG', `${name}: expected an integer ≥ 0, got '${raw}'`);
  return n;
}

/** The first host of a Slurm node list ("node[03-05,7],gpu1" → "node03"). */
export function firstSlurmHost(nodeList: string): string {
  const m = /^([^,[]+)(?:\[([^\]]+)\])?/.exec(nodeList.trim());
  if (!m) return nodeList;
  if (!m[2]) return m[1]!;
  return m[1]! + m[2].split(',')[0]!.split('-')[0]!;
}

/**
 * The rank this process was started as, from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
 * MASTER_PORT) or Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, the first host of SLURM_NODELIST, a port
 * from SLURM_JOB_ID as Lightning's SLURMEnvironment picks it); null when neither says there is more than one
 * process. torchrun's win when both are set (torchrun inside a Slurm job).
 */
export function distributedFromEnv(env: NodeJS.ProcessEnv = process.env): DistributedOptions | null {
  const worldSize = intFrom(env, 'WORLD_SIZE');
  const rank = intFrom(env, 'RANK');
  if (worldSize !== undefined && rank !== undefined) {
    if (worldSize <= 1) return null;
    return {
      rank, worldSize, localRank: intFrom(env, 'LOCAL_RANK') ?? rank,
      masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort: intFrom(env, 'MASTER_PORT') ?? DEFAULT_MASTER_PORT,
    };
  }
  const tasks = intFrom(env, 'SLURM_NTASKS');
  const procId = intFrom(env, 'SLURM_PROCID');
  if (tasks !== undefined && procId !== undefined && tasks > 1) {
    const jobId = env.SLURM_JOB_ID ?? '';
    return {
      rank: procId, worldSize: tasks, localRank: intFrom(env, 'SLURM_LOCALID') ?? 0,
      masterAddr: env.MASTER_ADDR || (env.SLURM_NODELIST ? firstSlurmHost(env.SLURM_NODELIST) : '127.0.0.1'),
      masterPort: intFrom(env, 'MASTER_PORT') ?? (/^\d+$/.test(jobId) ? 15000 + Number(jobId.slice(-4)) : DEFAULT_MASTER_PORT),
    };
  }
  return null;
}

/** Checks a DistributedOptions and fills in its defaults (ERR_ARG naming the field). */
export function resolveDistributed(o: DistributedOptions): Required<DistributedOptions> {
  const int = (v: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      fail('ERR_ARG', `distributed.${name}: expected an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? '∞' : max}, got ${String(v)}`);
    }
    return v;
  };
  const worldSize = int(o.worldSize, 'worldSize', 1);
  const rank = int(o.rank, 'rank', 0, worldSize - 1);
  const backend = o.backend ?? 'gloo';
  if (backend !== 'gloo' && backend !== 'nccl') fail('ERR_ARG', `distributed.backend: expected 'gloo' or 'nccl', got '${String(backend)}'`);
  const overlap = o.overlap ?? true;
  if (typeof overlap !== 'boolean') fail('ERR_ARG', `distributed.overlap: expected true or false, got ${String(overlap)}`);
  return {
    rank, worldSize, localRank: int(o.localRank ?? rank, 'localRank', 0),
    masterAddr: o.masterAddr ?? '127.0.0.1', masterPort: int(o.masterPort ?? DEFAULT_MASTER_PORT, 'masterPort', 1, 65535),
    timeoutMs: int(o.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs', 1), backend,
    overlap, bucketBytes: int(o.bucketBytes ?? DEFAULT_BUCKET_BYTES, 'bucketBytes', 1),
  };
}

/** A joined process group: this process's rank in it, and the collectives the trainer uses besides the gradients'. */
export class ProcessGroup {
  private constructor(readonly options: Required<DistributedOptions>, readonly native: NativeProcessGroup) {}

  /** Joins the rendezvous at masterAddr:masterPort; resolves once every rank is there (ERR_DISTRIBUTED after timeoutMs). */
  static async join(options: DistributedOptions): Promise<ProcessGroup> {
    const o = resolveDistributed(options);
    const native = await binding().NativeProcessGroup.create(o);
    return new ProcessGroup(o, native);
  }

  /** The backends this build of litlora has (empty: its libtorch has no c10d). */
  static backends(): string[] { return binding().NativeProcessGroup.backends(); }

  get rank(): number { return this.options.rank; }
  get worldSize(): number { return this.options.worldSize; }
  /** Rank 0 alone writes files and prints. */
  get isMain(): boolean { return this.options.rank === 0; }
  /** This rank's part of the data under the run's seed. */
  shard(seed: number): Shard { return { rank: this.rank, worldSize: this.worldSize, seed }; }

  /** Element-wise sums over the ranks. */
  sum(values: number[]): Promise<number[]> { return this.native.allReduceSum(values); }
  barrier(): Promise<void> { return this.native.barrier(); }
  /** How the trainer averages gradients through this group (NativeTrainer.setProcessGroup's second argument). */
  get gradientSync(): { overlap: boolean; bucketBytes: number } {
    return { overlap: this.options.overlap, bucketBytes: this.options.bucketBytes };
  }
  /**
   * The gradient all-reduces so far: calls, buckets (overlappedBuckets of them started during the backward), bytes
   * this rank contributed, and the seconds the training thread spent on them after the backward (exposed time).
   */
  stats() { return this.native.stats(); }
  dispose(): void { this.native.dispose(); }
}
