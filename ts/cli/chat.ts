// `litlora chat <dir>`: litgpt's chat REPL — each prompt goes through the folder's prompt style, the reply
// streams as it is generated and stops at the style's stop tokens. Works on base, LoRA-only (merged in
// memory, nothing written — litgpt's chat writes lit_model.pth first) and merged folders.
import { createInterface } from 'node:readline';
import { Conversation } from '../data/conversation.js';
import { generate } from '../generate/generate.js';
import type { CliIO, CommandSpec } from './args.js';
import { LOAD_FLAGS, SAMPLING_FLAGS, loadForGeneration, samplingOptions } from './use-common.js';

/** CliIO plus where the prompts come from (stdin by default). */
export interface ChatIO extends CliIO {
  input?: NodeJS.ReadableStream;
}

const EXIT_WORDS = new Set(['', '!quit', '!exit', 'quit', 'exit']);

export const command: CommandSpec = {
  name: 'chat',
  summary: 'Chat with a base, LoRA (final/, step-XXXXXX/) or merged checkpoint folder.',
  description: `
Type a prompt and press Enter; the reply streams as it is generated. An empty line, !quit or !exit ends
the session (so does end of input). The prompt style comes from prompt_style.yaml (else the model's
default) and its stop tokens end each reply.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    ...LOAD_FLAGS,
    ...SAMPLING_FLAGS,
  ],
  examples: ['litlora chat out/finetune/lora/final', 'echo "Reverse: abc" | litlora chat out/finetune/lora/final --temperature 0'],
  async run(args, io) {
    const chatIO = io as ChatIO;
    const { model, tokenizer, promptStyle } = await loadForGeneration(args, io);
    const input = chatIO.input ?? process.stdin;
    const interactive = input === process.stdin && process.stdin.isTTY === true;
    const lines = createInterface({ input, terminal: false });
    io.err('Now chatting with the model. Enter an empty line, !quit or !exit to end.\n');
    const options = samplingOptions(args);
    // Multi-turn where the style has a multi-turn form (chat templates, Llama 3): each prompt carries the history.
    const conversation = new Conversation(promptStyle);
    const stopTokens = conversation.stopTokens(tokenizer);
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.on('SIGINT', onSigint);
    try {
      io.out('>> Prompt: ');
      for await (const line of lines) {
        if (!interactive) io.out(`${line}\n`);
        if (EXIT_WORDS.has(line.trim())) break;
        io.out('>> Reply: ');
        const it = generate(model, tokenizer, conversation.prompt(line), { ...options, stopTokens, signal: controller.signal });
        let reply = '';
        while (true) {
          const next = await it.next();
          if (next.done) {
            conversation.reply(reply);
            const s = next.value;
            const total = s.prefillSeconds + s.decodeSeconds;
            io.out('\n');
            io.err(`Time for inference: ${total.toFixed(2)} sec total, ${(s.generatedTokens / Math.max(total, 1e-9)).toFixed(2)} tokens/sec, ${s.generatedTokens} tokens\n`);
            break;
          }
          reply += next.value;
          io.out(next.value);
        }
        io.out('\n>> Prompt: ');
      }
      io.out('\n');
    } finally {
      process.off('SIGINT', onSigint);
      lines.close();
      model.dispose();
    }
  },
};
