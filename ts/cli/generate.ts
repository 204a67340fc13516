// `litlora generate <dir> --prompt "…"`: litgpt's generate, streaming the text to stdout as it is made, on any
// checkpoint folder (litgpt's own generate refuses LoRA-only folders; here they are merged in memory).
import { generate } from '../generate/generate.js';
import type { CommandSpec } from './args.js';
import { LOAD_FLAGS, SAMPLING_FLAGS, loadForGeneration, samplingOptions } from './use-common.js';

export const command: CommandSpec = {
  name: 'generate',
  summary: 'Generate text from a prompt with a base, LoRA (final/, step-XXXXXX/) or merged checkpoint folder.',
  description: `
The prompt goes through the folder's prompt style (prompt_style.yaml, else the model's default) as in
litgpt; generation stops at max_new_tokens or at the style's stop tokens (EOS). The text streams to stdout
token by token; loading and timing lines go to stderr.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    ...LOAD_FLAGS,
    { name: 'prompt', type: 'string', default: 'What food do llamas eat?', help: 'The prompt' },
    { name: 'num_samples', type: 'int', default: 1, help: 'How many samples to generate' },
    { name: 'sys_prompt', type: 'string', default: null, nullable: true, help: 'The system prompt of the prompt style (default: the style\'s own)' },
    ...SAMPLING_FLAGS,
  ],
  examples: [
    'litlora generate out/finetune/lora/final --prompt "Reverse: abc"',
    'litlora generate out/finetune/lora/step-000100 --prompt "Reverse: abc" --temperature 0',
  ],
  async run(args, io) {
    const { model, tokenizer, promptStyle } = await loadForGeneration(args, io);
    try {
      const base = samplingOptions(args);
      for (let i = 0; i < args.get<number>('num_samples'); i++) {
        const sysPrompt = args.get<string | null>('sys_prompt') ?? undefined;
        const it = generate(model, tokenizer, args.get<string>('prompt'), { ...base, seed: base.seed! + i, promptStyle, sysPrompt });
        while (true) {
          const next = await it.next();
          if (next.done) {
            io.out('\n');
            const s = next.value;
            const total = s.prefillSeconds + s.decodeSeconds;
            io.err(`Time for inference ${i + 1}: ${total.toFixed(2)} sec total, ${(s.generatedTokens / Math.max(total, 1e-9)).toFixed(2)} tokens/sec, ` +
              `${s.generatedTokens} tokens (stopped by ${s.reason})\n`);
            break;
          }
          io.out(next.value);
        }
      }
    } finally {
      model.dispose();
    }
  },
};
