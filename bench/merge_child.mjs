// One merge_lora run of bench/merge.ts in its own process, so that its peak RSS is its own.
// Usage: node bench/merge_child.mjs LORA_DIR OUT_DIR   → one JSON line {seconds, maxrss_kb, baseline_kb}
import { mergeLora } from '../dist/merge.js';
import { binding } from '../dist/binding.js';

const [loraDir, outDir] = process.argv.slice(2);
binding(); // the addon (and libtorch) loaded: that is the baseline
const baselineKb = process.resourceUsage().maxRSS;
const start = performance.now();
const result = await mergeLora(loraDir, { outDir, force: true });
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({ seconds, maxrss_kb: process.resourceUsage().maxRSS, baseline_kb: baselineKb, method: result.method, tensors: result.tensors }));
