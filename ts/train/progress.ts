// Where a training run's console output goes. On a terminal: one bar (optimizer step, loss, tokens/s, ETA) via
// the cli-progress package, with log lines printed above it. Elsewhere (pipes, CI, files): litgpt's plain lines
// (./log.ts words them), e.g.
//   Epoch 1 | iter 10 step 5 | loss train: 2.345, val: n/a | iter time: 12.34 ms (step)
import cliProgress from 'cli-progress';

export interface ProgressUpdate {
  step: number;
  maxSteps: number;
  loss: number;
  tokensPerSecond: number;
}

export interface ProgressSink {
  /** A line of log output (no trailing newline). */
  line(text: string): void;
  /** An iteration's metrics line (plain mode prints it; the bar shows the numbers instead). */
  iteration(text: string, update: ProgressUpdate): void;
  stop(): void;
}

/** Plain lines to `write` (stdout by default). */
export function plainProgress(write: (text: string) => void = (t) => process.stdout.write(t)): ProgressSink {
  return {
    line: (text) => write(`${text}\n`),
    iteration: (text) => write(`${text}\n`),
    stop: () => {},
  };
}

/** A terminal bar on `stream` (stderr by default); log lines scroll above it. */
export function barProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  const multi = new cliProgress.MultiBar({
    stream,
    format: 'step {value}/{total} |{bar}| loss {loss} | {tps} tok/s | ETA {eta_formatted}',
    hideCursor: true,
    clearOnComplete: false,
    etaBuffer: 20,
    fps: 5,
  }, cliProgress.Presets.shades_classic);
  let bar: cliProgress.SingleBar | null = null;
  return {
    line: (text) => { multi.log(`${text}\n`); },
    iteration: (_text, u) => {
      const payload = { loss: u.loss.toFixed(3), tps: Math.round(u.tokensPerSecond) };
      if (!bar) bar = multi.create(u.maxSteps, u.step, payload);
      else {
        bar.setTotal(u.maxSteps);
        bar.update(u.step, payload);
      }
    },
    stop: () => { multi.stop(); },
  };
}

/** 'none': nothing; 'auto': a bar when stderr is a terminal, plain lines on stdout otherwise. */
export function chooseProgress(mode: 'auto' | 'bar' | 'plain' | 'none'): ProgressSink {
  if (mode === 'none') return { line: () => {}, iteration: () => {}, stop: () => {} };
  if (mode === 'bar' || (mode === 'auto' && process.stderr.isTTY)) return barProgress();
  return plainProgress();
}
