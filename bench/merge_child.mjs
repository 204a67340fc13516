// One merge_lora run of bench/merge.ts in its own process, so that its peak RSS is its own.
// Usage: node bench/merge_child.mjs LORA_DIR OUT_DIR   → one JSON line {seconds, maxrss_kb, baseline_kb}
import { readFileSync } from 'node:fs';
import { mergeLora } from '../dist/model/merge.js';
import { binding } from '../dist/binding.js';

// VmHWM: this process's peak RSS (ru_maxrss would also count the parent's RSS at fork time).
const hwmKb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);

const [loraDir, outDir] = process.argv.slice(2);
binding(); // the addon (and libtorch) loaded: that is the baseline
const baselineKb = hwmKb();
const start = performance.now();
const result = await mergeLora(loraDir, { outDir, force: true });
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({ seconds, maxrss_kb: hwmKb(), baseline_kb: baselineKb, method: result.method, tensors: result.tensors }));
