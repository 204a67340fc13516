// One litlora conversion of bench/convert.ts in its own process, so that its peak RSS and start-up are its own.
// It runs the command line a user runs (`litlora convert_to_litgpt HF_DIR --force`, `litlora convert_from_litgpt
// LITGPT_DIR OUT_DIR --force`) through runCli, so the start-up is the CLI's.
// Usage: node bench/convert_child.mjs to-litgpt HF_DIR
//        node bench/convert_child.mjs from-litgpt LITGPT_DIR OUT_DIR
//   → one JSON line {seconds, maxrss_kb, baseline_kb}: seconds is the command after the imports and the addon's
//     load (the parent times the whole process and reads the output's size and tensors itself).
import { readFileSync } from 'node:fs';
import { binding } from '../dist/binding.js';
import { runCli } from '../dist/cli/main.js';

// VmHWM: this process's peak RSS (ru_maxrss would also count the parent's RSS at fork time).
const hwmKb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);

const [direction, src, dst] = process.argv.slice(2);
const argv = { 'to-litgpt': ['convert_to_litgpt', src, '--force'], 'from-litgpt': ['convert_from_litgpt', src, dst, '--force'] }[direction];
if (!argv) throw new Error(`direction must be to-litgpt or from-litgpt, got ${direction}`);
binding(); // the addon (and libtorch) loaded: that is the baseline
const baselineKb = hwmKb();
let messages = '';
const start = performance.now();
const code = await runCli(argv, { out: (t) => { messages += t; }, err: (t) => { messages += t; }, cwd: process.cwd() });
const seconds = (performance.now() - start) / 1000;
if (code !== 0) {
  process.stderr.write(messages);
  process.exit(code);
}
console.log(JSON.stringify({ seconds, maxrss_kb: hwmKb(), baseline_kb: baselineKb }));
