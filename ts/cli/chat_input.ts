// Where `litlora chat` reads its prompts. On a terminal: readline in terminal mode (line editing, arrow keys,
// history), and Ctrl-C arrives as a key press, not a signal. Elsewhere (a pipe, a file, a test stream): plain
// lines, each echoed after the prompt so that a transcript reads like a session, and Ctrl-C is SIGINT.
// Either way Ctrl-C calls onInterrupt, which decides what it means (stop a reply, or end the session).
import { createInterface, type Interface } from 'node:readline';
import type { CliIO } from './args.js';

export interface PromptReader {
  /** Shows `prompt` and resolves with the next line, or null once the input has ended (or close() was called). */
  next(prompt: string): Promise<string | null>;
  close(): void;
}

export function promptReader(input: NodeJS.ReadableStream, io: CliIO, terminal: boolean, onInterrupt: () => void): PromptReader {
  const rl: Interface = terminal
    ? createInterface({ input, output: process.stdout, terminal: true, historySize: 1000, removeHistoryDuplicates: true })
    : createInterface({ input, terminal: false });
  const lines: string[] = [];
  let waiter: ((line: string | null) => void) | null = null;
  let ended = false;
  rl.on('line', (line) => {
    if (waiter) { const w = waiter; waiter = null; w(line); } else lines.push(line);
  });
  rl.on('close', () => {
    ended = true;
    const w = waiter;
    waiter = null;
    w?.(null);
  });
  // In terminal mode readline reads Ctrl-C as a key and emits 'SIGINT' on the interface; otherwise it is the signal.
  const onSigint = () => onInterrupt();
  if (terminal) rl.on('SIGINT', onSigint);
  else process.on('SIGINT', onSigint);
  return {
    next(prompt) {
      if (terminal) {
        rl.setPrompt(prompt);
        rl.prompt();
      } else {
        io.out(prompt);
      }
      const echo = (line: string | null) => {
        if (!terminal && line !== null) io.out(`${line}\n`);
        return line;
      };
      if (lines.length) return Promise.resolve(echo(lines.shift()!));
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => { waiter = (line) => resolve(echo(line)); });
    },
    close() {
      if (!terminal) process.off('SIGINT', onSigint);
      if (!ended) rl.close();
    },
  };
}
