// `litlora serve …` as a child process for the HTTP tests: waits for the address it prints, keeps its stderr
// (one line per finished request), and reports how it exited.
import { spawn, type ChildProcess } from 'node:child_process';
import { cliProcessArgs } from './cli_process.js';

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  /** Resolves with the first stderr line matching `re` (already printed or still to come). */
  waitForErr: (re: RegExp) => Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startServe(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const child = spawn(process.execPath, cliProcessArgs(['serve', ...argv]), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  const watchers: { re: RegExp; resolve: (line: string) => void }[] = [];
  const check = () => {
    for (const w of [...watchers]) {
      const line = err.split('\n').find((l) => w.re.test(l));
      if (line !== undefined) { watchers.splice(watchers.indexOf(w), 1); w.resolve(line); }
    }
  };
  child.stderr!.on('data', (d) => { err += d; check(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({
        url: m[1], child, stderr: () => err, exited,
        waitForErr: (re) => new Promise((res) => { watchers.push({ re, resolve: res }); check(); }),
      });
    });
    exited.then(({ code }) => reject(new Error(`litlora serve exited (${code}) before listening:\n${out}\n${err}`)));
  });
}
