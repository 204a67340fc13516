// Child process for the atomicity test: saves `count` fresh 256 MiB tensors to argv[2] with saveTensors,
// so that the parent can SIGKILL it in the middle of the write.
import { Tensor, saveTensors } from '../../ts/index.js';

async function main(): Promise<void> {
  const [path, format, countText] = process.argv.slice(2);
  const base = Tensor.from(new Float32Array(64 << 20).fill(2), [64 << 20]);
  const tensors: Record<string, Tensor> = {};
  for (let i = 0; i < Number(countText); i++) tensors[`big.${i}`] = await base.to({ dtype: 'float32' });
  process.stdout.write('saving\n');
  await saveTensors(path, tensors, { format: format as 'pth' | 'safetensors' });
  process.stdout.write('saved\n');
}

void main();
