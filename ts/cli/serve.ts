// `litlora serve <dir>`: an OpenAI-compatible HTTP server (litgpt serve's flags where they apply) over a base,
// LoRA or merged folder, with more LoRA folders served by name (--adapter NAME=DIR). Runs until SIGTERM or
// SIGINT, then shuts down gracefully (ts/serve/shutdown.ts) and exits 0.
import { serve } from '../serve/app.js';
import { fail } from '../errors.js';
import type { CommandSpec } from './args.js';
import { LOAD_FLAGS, loadForGeneration } from './use-common.js';

export const command: CommandSpec = {
  name: 'serve',
  summary: 'Serve a checkpoint folder (and LoRA adapters on it) over an OpenAI-compatible HTTP API.',
  description: `
Routes: POST /v1/completions, POST /v1/chat/completions (server-sent events with "stream": true) and
GET /v1/models. The request's "model" is the base model's name or an adapter's NAME. Chat messages are
rendered with the folder's prompt style (prompt_style.yaml, else the model's default). Requests that leave
max_tokens, temperature, top_p or top_k out get the flags' values. Up to --max_batch requests decode
together (continuous batching, adapters mixed in one batch); up to --max_queue more wait their turn, and more
than that get 429. The address is printed on stdout once the server
listens (--port 0 picks a free port). SIGTERM or Ctrl-C: stop accepting, let requests in flight finish for
--grace_period seconds, abort the rest, exit 0.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    ...LOAD_FLAGS,
    { name: 'host', type: 'string', default: '127.0.0.1', help: 'The address to listen on (0.0.0.0: every interface)' },
    { name: 'port', type: 'int', default: 8000, help: 'The port to listen on (0: a free one)' },
    { name: 'max_new_tokens', type: 'int', default: 50, help: 'Tokens to generate at most when a request gives no max_tokens' },
    { name: 'temperature', type: 'float', default: 0.8, help: 'Sampling temperature when a request gives none; 0 = greedy' },
    { name: 'top_k', type: 'int', default: 50, nullable: true, help: 'Sample from the k most likely tokens when a request gives no top_k (null: all)' },
    { name: 'top_p', type: 'float', default: 1.0, help: 'Nucleus sampling threshold when a request gives no top_p (1: off)' },
    { name: 'devices', type: 'int', default: 1, help: 'Devices to use (litgpt\'s flag); litlora serves from one (pick it with --device)' },
    { name: 'stream', type: 'bool', default: false, help: 'Stream (server-sent events) when a request does not say "stream"' },
    { name: 'adapter', type: 'string', default: [], repeatable: true, metavar: 'NAME=DIR', help: 'Also serve the LoRA folder DIR as model NAME (repeatable)' },
    { name: 'api_key', type: 'string', default: null, nullable: true, help: 'Require "Authorization: Bearer KEY" (default: $LITLORA_API_KEY if set, else none)' },
    { name: 'max_batch', type: 'int', default: 16, help: 'Requests that decode together (continuous batching)' },
    { name: 'max_queue', type: 'int', default: 1024, help: 'Requests that may wait for a place in the batch; more get 429' },
    { name: 'body_limit', type: 'int', default: 1048576, help: 'Largest request body in bytes (413 above it)' },
    { name: 'grace_period', type: 'float', default: 10, help: 'Seconds requests in flight may take to finish after SIGTERM before they are aborted' },
  ],
  examples: [
    'litlora serve out/finetune/lora/final',
    'litlora serve checkpoints/EleutherAI/pythia-160m --adapter sql=out/sql/final --adapter chat=out/chat/final --port 8080',
  ],
  async run(args, io) {
    if (args.get<number>('devices') !== 1) {
      fail('ERR_ARG', `--devices ${args.get<number>('devices')}: litlora serve runs on one device; leave --devices at 1 and pick it with --device (cpu, cuda, cuda:N).`);
    }
    for (const [flag, min] of [['max_queue', 0], ['max_batch', 1], ['body_limit', 1], ['max_new_tokens', 1]] as const) {
      if (args.get<number>(flag) < min) fail('ERR_ARG', `--${flag} expects an integer ≥ ${min}, got ${args.get<number>(flag)}`);
    }
    if (!(args.get<number>('grace_period') >= 0)) fail('ERR_ARG', `--grace_period expects seconds ≥ 0, got ${args.get<number>('grace_period')}`);
    const adapters: Record<string, string> = {};
    for (const spec of args.get<string[]>('adapter')) {
      const eq = spec.indexOf('=');
      const name = spec.slice(0, eq), dir = spec.slice(eq + 1);
      if (eq <= 0 || !dir) fail('ERR_ARG', `--adapter ${JSON.stringify(spec)}: expected NAME=DIR, e.g. --adapter sql=out/sql/final`);
      if (name in adapters) fail('ERR_ARG', `--adapter ${name}=…: the name ${JSON.stringify(name)} is given twice`);
      adapters[name] = dir;
    }
    const { model, tokenizer, promptStyle } = await loadForGeneration(args, io);
    try {
      const server = await serve(model, tokenizer, {
        host: args.get<string>('host'),
        port: args.get<number>('port'),
        apiKey: args.get<string | null>('api_key') ?? process.env.LITLORA_API_KEY ?? null,
        maxQueue: args.get<number>('max_queue'),
        maxBatch: args.get<number>('max_batch'),
        bodyLimit: args.get<number>('body_limit'),
        promptStyle,
        adapters,
        adapterLoad: { cwd: io.cwd, dtype: model.dtype, device: model.device },
        defaults: {
          maxNewTokens: args.get<number>('max_new_tokens'),
          temperature: args.get<number>('temperature'),
          topK: args.get<number | null>('top_k'),
          topP: args.get<number>('top_p'),
          stream: args.get<boolean>('stream'),
        },
        log: (line) => io.err(`${line}\n`),
      });
      for (const name of Object.keys(adapters)) io.err(`Serving adapter ${JSON.stringify(name)} from ${adapters[name]}\n`);
      io.out(`litlora serve: listening on ${server.address} (models: ${[String(model.config.name), ...Object.keys(adapters)].join(', ')})\n`);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        const on = (s: NodeJS.Signals) => { process.off('SIGTERM', on); process.off('SIGINT', on); resolve(s); };
        process.on('SIGTERM', on);
        process.on('SIGINT', on);
      });
      io.err(`${signal}: shutting down (requests in flight get ${args.get<number>('grace_period')} s to finish)\n`);
      await server.close({ graceMs: args.get<number>('grace_period') * 1000 });
      io.err('Stopped.\n');
    } finally {
      model.dispose();
    }
  },
};
