// One litlora conversion of bench/convert.ts in its own process, so that its peak RSS and start-up are its own.
// Usage: node bench/convert_child.mjs to-litgpt HF_DIR
//        node bench/convert_child.mjs from-litgpt LITGPT_DIR OUT_DIR
//   → one JSON line {seconds, maxrss_kb, baseline_kb}: seconds is the conversion after the imports and the
//     addon's load (the parent times the whole process and reads the output's size and tensors itself).
import { readFileSync } from 'node:fs';
import { binding } from '../dist/binding.js';

// VmHWM: this process's peak RSS (ru_maxrss would also count the parent's RSS at fork time).
const hwmKb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);

const [direction, src, dst] = process.argv.slice(2);
const convert = direction === 'to-litgpt'
  ? (await import('../dist/interop/convert_to_litgpt.js')).convertToLitgpt.bind(null, src, { force: true })
  : direction === 'from-litgpt'
    ? (await import('../dist/interop/convert_from_litgpt.js')).convertFromLitgpt.bind(null, src, dst, { force: true })
    : null;
if (!convert) throw new Error(`direction must be to-litgpt or from-litgpt, got ${direction}`);
binding(); // the addon (and libtorch) loaded: that is the baseline
const baselineKb = hwmKb();
const start = performance.now();
await convert();
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({ seconds, maxrss_kb: hwmKb(), baseline_kb: baselineKb }));
