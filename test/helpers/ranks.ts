// Runs the ranks of a data-parallel test as child processes (test/helpers/ddp-child.ts), each under a hard
// timeout (SIGKILL) so that nothing can hang the suite, and reads what each printed.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const CHILD = join(import.meta.dirname, 'ddp-child.ts');

export interface RankOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  result: any;
  /** The coded error the child printed (null when it printed none). */
  error: any;
  stdout: string;
  stderr: string;
  /** Milliseconds from the start to this process's exit. */
  ms: number;
}

/** A TCP port that was free a moment ago (the rendezvous port of one test): the launcher's own. */
export { freePort } from '../../ts/cli/launch.js';

export interface RankHandle {
  child: ChildProcess;
  done: Promise<RankOutcome>;
  /** Resolves when the child printed a line starting with `prefix`. */
  printed(prefix: string): Promise<void>;
}

/** Starts one child running `scenario` with `spec`; killed with SIGKILL after hardTimeoutMs. */
export function startRank(scenario: string, spec: unknown, hardTimeoutMs: number, env: NodeJS.ProcessEnv = {}): RankHandle {
  const start = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, scenario, JSON.stringify(spec)], {
    env: { ...process.env, LITLORA_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '', stderr = '';
  const waiters: { prefix: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (d) => {
    stdout += d;
    for (const w of waiters.splice(0)) {
      if (stdout.split('\n').some((l) => l.startsWith(w.prefix))) w.resolve();
      else waiters.push(w);
    }
  });
  child.stderr!.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), hardTimeoutMs);
  const done = new Promise<RankOutcome>((resolve) => {
    child.on('exit', (status, signal) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes are drained; 'close' follows once they are.
      child.on('close', () => {
        const line = (p: string) => stdout.split('\n').find((l) => l.startsWith(p))?.slice(p.length);
        const result = line('RESULT ');
        const error = line('ERROR ');
        resolve({
          status, signal, result: result ? JSON.parse(result) : null, error: error ? JSON.parse(error) : null, stdout, stderr,
          ms: Date.now() - start,
        });
      });
    });
  });
  return {
    child, done,
    printed: (prefix) => new Promise<void>((resolve) => {
      if (stdout.split('\n').some((l) => l.startsWith(prefix))) resolve();
      else waiters.push({ prefix, resolve });
    }),
  };
}

/** Runs `worldSize` ranks of `scenario` (spec(rank) each) to the end. */
export async function runRanks(worldSize: number, scenario: string, spec: (rank: number) => unknown, hardTimeoutMs = 120_000): Promise<RankOutcome[]> {
  const ranks = Array.from({ length: worldSize }, (_, r) => startRank(scenario, spec(r), hardTimeoutMs));
  return Promise.all(ranks.map((r) => r.done));
}
