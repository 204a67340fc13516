// `--devices N` (and `--num_nodes M`): starts this node's N worker processes of a data-parallel run, as
// Lightning Fabric's launcher does for litgpt. Each worker is this CLI again with torchrun's environment (RANK,
// LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so a worker and a torchrun-started process are the same path
// (ts/train/distributed.ts distributedFromEnv). On the CPU each worker gets cores / N intra-op threads; with CUDA,
// device LOCAL_RANK. Rank 0's output is the command's; other ranks' error lines are shown with their rank.
//
// When a worker dies (or fails), the launcher stops the others (SIGTERM, then SIGKILL after a grace period) and
// fails with ERR_DISTRIBUTED naming that rank, so no worker is left waiting for a dead peer.
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createServer } from 'node:net';
import { LitloraError } from '../errors.js';
import type { CliIO } from './args.js';

export interface LaunchOptions {
  /** Workers on this machine. */
  devices: number;
  numNodes: number;
  /** This machine's index among the nodes (NODE_RANK). */
  nodeRank: number;
  masterAddr: string;
  /** null: a free port (one node only). */
  masterPort: number | null;
  /** The worker's command line: node's arguments and the CLI's entry and arguments. */
  command: string[];
  cuda: boolean;
}

const GRACE_MS = 5000;

/** @internal A port that was free a moment ago on this machine (one-node runs without MASTER_PORT; the tests' ranks). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Forwards a stream line by line. */
function lines(stream: NodeJS.ReadableStream, write: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop()!;
    for (const p of parts) write(`${p}\n`);
  });
  stream.on('end', () => { if (pending) write(`${pending}\n`); });
}

/** Runs this node's workers to the end; resolves 0 when all succeeded, throws ERR_DISTRIBUTED otherwise. */
export async function launchWorkers(o: LaunchOptions, io: CliIO): Promise<number> {
  const worldSize = o.devices * o.numNodes;
  const port = o.masterPort ?? await freePort();
  const threads = Math.max(1, Math.floor(availableParallelism() / o.devices));
  const children: ChildProcess[] = [];
  let failure: { rank: number; status: number | null; signal: NodeJS.Signals | null } | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const stopOthers = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    killTimer = setTimeout(() => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); }, GRACE_MS);
  };
  // Ctrl-C or a kill of the launcher stops its workers too.
  const onSignal = (signal: NodeJS.Signals) => { for (const c of children) c.kill(signal); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exits = [];
    for (let local = 0; local < o.devices; local++) {
      const rank = o.nodeRank * o.devices + local;
      const child = spawn(process.execPath, o.command, {
        cwd: io.cwd,
        env: {
          ...process.env, RANK: String(rank), LOCAL_RANK: String(local), WORLD_SIZE: String(worldSize),
          LOCAL_WORLD_SIZE: String(o.devices), NODE_RANK: String(o.nodeRank), MASTER_ADDR: o.masterAddr, MASTER_PORT: String(port),
          ...(o.cuda ? {} : { LITLORA_THREADS: String(threads) }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      if (rank === 0) lines(child.stdout!, io.out);
      else child.stdout!.resume();
      lines(child.stderr!, rank === 0 ? io.err : (l) => io.err(`[rank ${rank}] ${l}`));
      exits.push(new Promise<void>((resolve) => {
        child.on('close', (status, signal) => {
          if ((status !== 0 || signal) && !failure) {
            failure = { rank, status, signal };
            stopOthers();
          }
          resolve();
        });
      }));
    }
    await Promise.all(exits);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const f = failure as { rank: number; status: number | null; signal: NodeJS.Signals | null } | null;
  if (f) {
    throw new LitloraError('ERR_DISTRIBUTED', `rank ${f.rank} of ${worldSize} ${f.signal ? `was killed by ${f.signal}` : `exited with status ${f.status}`}; ` +
      `the other workers on this node were stopped. Its error is above; the checkpoints already written are complete (continue with --resume true).`);
  }
  return 0;
}
