// A model's own chat template (tokenizer_config.json's `chat_template`, or chat_template.jinja beside it) rendered
// with @huggingface/jinja, the renderer Hugging Face maintains for transformers.js. The variables are those
// transformers' `apply_chat_template` passes: `messages`, `add_generation_prompt` and the special tokens of
// tokenizer_config.json (bos_token, eos_token, unk_token, pad_token); the engine strips blocks as transformers'
// Jinja environment does (trim_blocks, lstrip_blocks).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { fail } from '../errors.js';

/** One turn of a conversation, OpenAI-style. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** The special-token names transformers hands the template (tokenizer.special_tokens_map). */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

/** End-of-turn markers of the common template families; the ones a template writes and the vocabulary has stop generation. */
const END_OF_TURN_TOKENS = ['<|eot_id|>', '<|im_end|>', '<end_of_turn>', '<|end|>', '<|eom_id|>', '<｜end▁of▁sentence｜>', '</s>'];

function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as any).content === 'string') return (value as any).content;
  return null;
}

/** A parsed chat template with the special tokens it is rendered with. */
export class ChatTemplateRenderer {
  readonly #template: Template;
  readonly #specialTokens: Record<string, string>;

  constructor(readonly source: string, specialTokens: Record<string, string> = {}, where = 'chat_template') {
    try {
      this.#template = new Template(source);
    } catch (e: any) {
      fail('ERR_CONFIG', `${where}: the chat template does not parse (${e?.message ?? e}); expected a Jinja template as transformers reads it`);
    }
    this.#specialTokens = specialTokens;
  }

  /** transformers' `apply_chat_template(messages, tokenize=False, add_generation_prompt=…)`. */
  render(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    try {
      return this.#template.render({
        ...this.#specialTokens,
        ...options.extra,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
      });
    } catch (e: any) {
      return fail('ERR_ARG', `the chat template refused the conversation: ${e?.message ?? e}`);
    }
  }

  /** The end-of-turn markers this template writes (e.g. <|im_end|>), in END_OF_TURN_TOKENS order. */
  endOfTurnTokens(): string[] {
    return END_OF_TURN_TOKENS.filter((t) => this.source.includes(t) || Object.values(this.#specialTokens).includes(t));
  }

  /**
   * The template of a tokenizer_config.json object (+ the folder's chat_template.jinja, which newer transformers
   * writes instead). A list of named templates takes `name` (default: 'default'), as transformers does.
   */
  static fromTokenizerConfig(config: Record<string, unknown> | null, options: { dir?: string | null; name?: string | null } = {}): ChatTemplateRenderer {
    const where = options.dir ? join(options.dir, 'tokenizer_config.json') : 'tokenizer_config.json';
    let raw: unknown = config?.chat_template;
    const jinjaFile = options.dir ? join(options.dir, 'chat_template.jinja') : null;
    if (raw === undefined && jinjaFile && existsSync(jinjaFile)) raw = readFileSync(jinjaFile, 'utf8');
    if (raw === undefined || raw === null) {
      fail('ERR_CONFIG', `${where} has no chat_template (nor is there a chat_template.jinja beside it); ` +
        'the chat_template prompt style needs the model\'s own template: use a named prompt style (e.g. --data.prompt_style alpaca) instead');
    }
    let source: string;
    if (typeof raw === 'string') {
      if (options.name && options.name !== 'default') {
        fail('ERR_CONFIG', `${where}: the chat_template is a single template, so it has no template named '${options.name}'`);
      }
      source = raw;
    } else if (Array.isArray(raw)) {
      const wanted = options.name ?? 'default';
      const named = raw.filter((t) => t && typeof t.name === 'string' && typeof t.template === 'string') as { name: string; template: string }[];
      const hit = named.find((t) => t.name === wanted);
      if (!hit) {
        fail('ERR_CONFIG', `${where}: no chat template named '${wanted}'; the file has ${named.map((t) => `'${t.name}'`).join(', ') || 'none'}`);
      }
      source = hit.template;
    } else {
      return fail('ERR_CONFIG', `${where}: chat_template must be a string or a list of {name, template}, got ${typeof raw}`);
    }
    const specialTokens: Record<string, string> = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const content = tokenContent(config?.[key]);
      if (content !== null) specialTokens[key] = content;
    }
    return new ChatTemplateRenderer(source, specialTokens, where);
  }
}

/** Checks that `messages` is a list of {role, content} strings; ERR_ARG naming the first bad one. */
export function checkMessages(messages: unknown, what = 'messages'): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) fail('ERR_ARG', `${what}: expected a non-empty list of {role, content} messages`);
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string' || typeof m.content !== 'string') {
      fail('ERR_ARG', `${what}[${i}]: expected {role: string, content: string}, got ${JSON.stringify(m)}`);
    }
  });
  return messages as ChatMessage[];
}
