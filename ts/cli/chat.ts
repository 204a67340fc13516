// `litlora chat <dir>`: litgpt's chat REPL — each prompt goes through the folder's prompt style, the reply
// streams as it is generated and stops at the style's stop tokens. Works on base, LoRA-only (merged in
// memory, nothing written — litgpt's chat writes lit_model.pth first) and merged folders. On a terminal the
// prompt is edited with readline (arrow keys, history); Ctrl-C during a reply stops that reply only, Ctrl-C
// at the prompt ends the session (exit 0).
import { Conversation } from '../data/conversation.js';
import { generate } from '../generate/generate.js';
import type { CliIO, CommandSpec } from './args.js';
import { promptReader, type PromptReader } from './chat_input.js';
import { LOAD_FLAGS, SAMPLING_FLAGS, loadForGeneration, samplingOptions } from './use-common.js';

/** CliIO plus where the prompts come from (stdin by default). */
export interface ChatIO extends CliIO {
  input?: NodeJS.ReadableStream;
}

const EXIT_WORDS = new Set(['', '!quit', '!exit', 'quit', 'exit']);
/** litgpt's multiline mode ends a prompt with a line that is one of these (any case). */
const SUBMIT_WORDS = new Set(['!submit', '!quit', '!exit']);

/** One prompt: a line, or with --multiline the lines up to !submit (litgpt's interact()); null ends the session. */
async function readPrompt(reader: PromptReader, multiline: boolean, io: CliIO): Promise<string | null> {
  if (!multiline) return reader.next('>> Prompt: ');
  io.out(">> Prompt: (Type '!submit' on a new line to end input).\n");
  const lines: string[] = [];
  while (true) {
    const line = await reader.next('');
    if (line === null) return lines.length ? lines.join('\n') : null;
    if (SUBMIT_WORDS.has(line.trim().toLowerCase())) break;
    lines.push(line);
  }
  return lines.join('\n');
}

export const command: CommandSpec = {
  name: 'chat',
  summary: 'Chat with a base, LoRA (final/, step-XXXXXX/) or merged checkpoint folder.',
  description: `
Type a prompt and press Enter; the reply streams as it is generated. An empty line, !quit or !exit ends
the session (so do end of input and Ctrl-C at the prompt); Ctrl-C during a reply stops that reply. With
--multiline a prompt spans lines until one that says !submit. The prompt style comes from prompt_style.yaml
(else the model's default) and its stop tokens end each reply.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    ...LOAD_FLAGS,
    ...SAMPLING_FLAGS,
    { name: 'multiline', type: 'bool', default: false, help: 'Prompts span several lines, ended by a line \'!submit\' (litgpt\'s --multiline)' },
  ],
  examples: ['litlora chat out/finetune/lora/final', 'echo "Reverse: abc" | litlora chat out/finetune/lora/final --temperature 0'],
  async run(args, io) {
    const chatIO = io as ChatIO;
    const { model, tokenizer, promptStyle } = await loadForGeneration(args, io);
    const input = chatIO.input ?? process.stdin;
    // Terminal mode needs a terminal both ways: readline draws the prompt line with escape sequences on stdout.
    const terminal = input === process.stdin && process.stdin.isTTY === true && process.stdout.isTTY === true;
    const multiline = args.get<boolean>('multiline');
    // A fresh controller per reply: Ctrl-C stops the reply in progress, and at the prompt ends the session.
    let reply: AbortController | null = null;
    const reader = promptReader(input, io, terminal, () => {
      if (reply) reply.abort();
      else reader.close();
    });
    io.err(`Now chatting with the model. ${multiline ? "To exit, enter '!quit' or '!exit' on an empty prompt and press 'Enter'." : 'Enter an empty line, !quit or !exit to end.'}\n`);
    const options = samplingOptions(args);
    // Multi-turn where the style has a multi-turn form (chat templates, Llama 3): each prompt carries the history.
    const conversation = new Conversation(promptStyle);
    const stopTokens = conversation.stopTokens(tokenizer);
    try {
      while (true) {
        const prompt = await readPrompt(reader, multiline, io);
        if (prompt === null) { io.out('\n'); break; }
        if (EXIT_WORDS.has(prompt.trim().toLowerCase())) break;
        io.out('>> Reply: ');
        reply = new AbortController();
        const it = generate(model, tokenizer, conversation.prompt(prompt.trim()), { ...options, stopTokens, signal: reply.signal });
        let text = '';
        try {
          while (true) {
            const next = await it.next();
            if (next.done) {
              conversation.reply(text);
              const s = next.value;
              const total = s.prefillSeconds + s.decodeSeconds;
              io.out('\n');
              io.err(`Time for inference: ${total.toFixed(2)} sec total, ${(s.generatedTokens / Math.max(total, 1e-9)).toFixed(2)} tokens/sec, ${s.generatedTokens} tokens${s.reason === 'cancelled' ? ' (stopped by Ctrl-C)' : ''}\n`);
              break;
            }
            text += next.value;
            io.out(next.value);
          }
        } finally {
          await it.return(undefined as never);
          reply = null;
        }
        io.out('\n');
      }
    } finally {
      reader.close();
      model.dispose();
    }
  },
};
