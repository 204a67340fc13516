// litgpt's prompt styles: the exact strings of litgpt/prompts.py (Lightning-AI/litgpt, the current version with
// `sys_prompt`, where ChatML omits the system turn when there is no system message), every class and the name table
// (`prompt_styles`), the model-name mapping (`model_name_to_prompt_style`) and prompt_style.yaml
// (`class_path: litgpt.prompts.<Class>`). test/fixtures/prompts/litgpt_prompts.json holds the strings prompts.py
// itself renders (test/reference/make_prompt_fixtures.py).
//
// Beyond litgpt: the `chat_template` style renders the model's own chat template (./chat_template.ts); it is bound
// to a tokenizer's folder with `forTokenizer`. Styles with a multi-turn form (litgpt's Llama3 and R1Base, and chat
// templates) render a whole conversation with `applyMessages`.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import { fail } from '../errors.js';
import { configFromParsed } from '../model/config.js';
import { parseYaml } from '../io/yaml.js';
import { ChatTemplateRenderer, checkMessages, type ChatMessage } from './chat_template.js';

export type { ChatMessage } from './chat_template.js';

/** What a prompt style needs from a tokenizer to name its stop sequences. */
export interface StopTokenSource {
  readonly eosId: number | null;
  tokenToId(token: string): number;
}

/** What the chat_template style needs from a tokenizer: its tokenizer_config.json and folder. */
export interface TemplateTokenizer extends StopTokenSource {
  readonly config: Record<string, unknown> | null;
  readonly dir: string | null;
}

/** How `applyMessages` ends: with the assistant header for the next reply (default) or without. */
export interface MessagesOptions {
  addGenerationPrompt?: boolean;
}

/** Fields of an instruction sample that a style may use (litgpt passes the whole example as kwargs). */
export interface PromptFields {
  input?: string;
  sysPrompt?: string;
  [key: string]: unknown;
}

export abstract class PromptStyle {
  /** litgpt's class name, e.g. 'Alpaca' (prompt_style.yaml says `litgpt.prompts.<className>`). */
  abstract readonly className: string;

  /** The prompt text for an instruction (`PromptStyle.apply(prompt, sys_prompt=None, **kwargs)`). */
  abstract apply(prompt: string, fields?: PromptFields): string;

  /** Whether `applyMessages` renders a whole conversation (litgpt's Llama3 and R1Base take a list of messages). */
  get multiTurn(): boolean {
    return false;
  }

  /**
   * The text of a conversation, ready for the assistant's next turn (addGenerationPrompt false: without the
   * assistant header, as a finished conversation is rendered for training); ERR_ARG for a single-turn style.
   */
  applyMessages(messages: readonly ChatMessage[], fields: PromptFields = {}, options: MessagesOptions = {}): string {
    void messages; void fields; void options;
    return fail('ERR_ARG', `the ${this.className} prompt style has no multi-turn form; use one that has (llama3, r1, chat_template)`);
  }

  /** Token-id sequences that end a generation; the first is always [eos]. */
  stopTokens(tokenizer: StopTokenSource): number[][] {
    return tokenizer.eosId === null ? [] : [[tokenizer.eosId]];
  }

  /** The style to use with this tokenizer: itself, except chat_template, which reads the tokenizer's template. */
  forTokenizer(tokenizer: TemplateTokenizer): PromptStyle {
    void tokenizer;
    return this;
  }

  /** `prompt_styles[name]()`; an unknown name is ERR_CONFIG listing the known ones. */
  static fromName(name: string): PromptStyle {
    const make = Object.hasOwn(PROMPT_STYLES, name) ? PROMPT_STYLES[name] : undefined;
    if (!make) {
      fail('ERR_CONFIG', `unknown prompt style '${name}'; expected one of: ${Object.keys(PROMPT_STYLES).join(', ')}`);
    }
    return make();
  }

  /** `PromptStyle.from_config(config)`: the style litgpt picks from the model's name. */
  static fromConfig(config: { name: string }): PromptStyle {
    return modelNameToPromptStyle(config.name);
  }

  /** The class_path written to prompt_style.yaml. */
  get classPath(): string {
    return `litgpt.prompts.${this.className}`;
  }
}

/** Python's `sys_prompt or default`: an empty string counts as none. */
const or = (value: string | undefined, fallback: string): string => value || fallback;

export class Default extends PromptStyle {
  readonly className = 'Default';
  apply(prompt: string): string {
    return prompt;
  }
}

const ALPACA_INPUT_SYSTEM = 'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n';
const ALPACA_SYSTEM = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';

export class Alpaca extends PromptStyle {
  readonly className = 'Alpaca';
  apply(prompt: string, fields: PromptFields = {}): string {
    // litgpt tests `kwargs.get("input")`: an empty string counts as no input.
    if (fields.input) {
      return `${or(fields.sysPrompt, ALPACA_INPUT_SYSTEM)}### Instruction:\n${prompt}\n\n### Input:\n${fields.input}\n\n### Response:\n`;
    }
    return `${or(fields.sysPrompt, ALPACA_SYSTEM)}### Instruction:\n${prompt}\n\n### Response:\n`;
  }
}

export class FLAN extends PromptStyle {
  readonly className = 'FLAN';
  apply(prompt: string, fields: PromptFields = {}): string {
    return `${or(fields.sysPrompt, ALPACA_SYSTEM)}### Instruction:\n${prompt}\n\n### Response:\n`;
  }
}

export class Longform extends PromptStyle {
  readonly className = 'Longform';
  apply(prompt: string, fields: PromptFields = {}): string {
    return `${or(fields.sysPrompt, ALPACA_INPUT_SYSTEM)}### Instruction:\n${prompt}\n\n### Response:\n`;
  }
}

/** The ids of `tokens` in order (litgpt's `tokenizer.token_to_id`, which raises for a token not in the vocabulary). */
const ids = (tokenizer: StopTokenSource, ...tokens: string[]): number[] => tokens.map((t) => tokenizer.tokenToId(t));

export class StableLMAlpha extends PromptStyle {
  readonly className = 'StableLMAlpha';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = or(fields.sysPrompt, '# StableLM Tuned (Alpha version)\n- StableLM is a helpful and harmless open-source AI language' +
      ' model developed by StabilityAI.\n- StableLM is excited to be able to help the user, but will refuse to do' +
      ' anything that could be considered harmful to the user.\n- StableLM is more than just an information' +
      ' source, StableLM is also able to write poetry, short stories, and make jokes.\n- StableLM will refuse to' +
      ' participate in anything that could harm a human.');
    return `<|SYSTEM|>${sys}<|USER|>${prompt}<|ASSISTANT|>`;
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    return [[tokenizer.eosId as number], ids(tokenizer, '<|SYSTEM|>'), ids(tokenizer, '<|ASSISTANT|>'), ids(tokenizer, '<|USER|>')];
  }
}

export class StableLMZephyr extends PromptStyle {
  readonly className = 'StableLMZephyr';
  apply(prompt: string): string {
    return `<|user|>\n${prompt}<|endoftext|>\n<|assistant|>\n`;
  }
}

export class Falcon extends PromptStyle {
  readonly className = 'Falcon';
  apply(prompt: string): string {
    return `${prompt}\nAnswer:`;
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    // Falcon rarely emits EOS and writes the next "User:" turn instead (193 is its '\n').
    return [[tokenizer.eosId as number], ids(tokenizer, 'User', ':'), [193, tokenizer.tokenToId('User')]];
  }
}

export class Falcon3 extends PromptStyle {
  readonly className = 'Falcon3';
  apply(prompt: string): string {
    return `<|user|>\n${prompt}<|endoftext|>\n<|assistant|>\n`;
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    return [[tokenizer.eosId as number], ids(tokenizer, '<|endoftext|>')];
  }
}

export class Llama2FunctionCalling extends PromptStyle {
  readonly className = 'Llama2FunctionCalling';
  apply(prompt: string, fields: PromptFields = {}): string {
    // Python's json.dumps of litgpt's example function, with its braces doubled as litgpt does.
    const functionList = '{"function": "search_bing", "description": "Search the web for content on Bing. This allows users to ' +
      'search online/the internet/the web for content.", "arguments": [{"name": "query", "type": "string", "description": ' +
      '"The search query string"}]}';
    const escaped = functionList.replace(/\{/g, '{{').replace(/\}/g, '}}');
    const sys = or(fields.sysPrompt, 'You are a helpful, respectful and honest assistant. Always answer as helpfully as' +
      'possible. Your only response should be JSON formatted functions');
    return `<FUNCTIONS>${escaped.trim()}</FUNCTIONS>\n\n[INST]<<SYS>>\n${pyStrip(sys)}\n<</SYS>>\n\n${prompt}[/INST]\n\n`;
  }
}

/** Python's str.strip() (whitespace as Python defines it for str). */
function pyStrip(s: string): string {
  return s.replace(/^[\s\u001c-\u001f\u0085]+|[\s\u001c-\u001f\u0085]+$/gu, '');
}

const LLAMA2_SYSTEM =
  'You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe.  ' +
  'Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. ' +
  'Please ensure that your responses are socially unbiased and positive in nature.\n\nIf a question does not make ' +
  'any sense, or is not factually coherent, explain why instead of answering something not correct. If you don\'t ' +
  'know the answer to a question, please don\'t share false information.';

export class Llama2 extends PromptStyle {
  readonly className = 'Llama2';
  apply(prompt: string, fields: PromptFields = {}): string {
    return `[INST] <<SYS>>\n${or(fields.sysPrompt, LLAMA2_SYSTEM)}\n<</SYS>>\n\n ${prompt} [/INST] `;
  }
}

const LLAMA3_ROLES = ['assistant', 'user', 'system'];

export class Llama3 extends PromptStyle {
  readonly className = 'Llama3';
  apply(prompt: string, fields: PromptFields = {}): string {
    return '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
      `${or(fields.sysPrompt, 'You are a helpful assistant.')}<|eot_id|>` +
      '<|start_header_id|>user<|end_header_id|>\n\n' +
      `${prompt}<|eot_id|>` +
      '<|start_header_id|>assistant<|end_header_id|>\n\n';
  }
  override get multiTurn(): boolean {
    return true;
  }
  /** litgpt's Llama3.apply(list of messages): Meta's format, each content stripped, a default system turn first. */
  override applyMessages(messages: readonly ChatMessage[], fields: PromptFields = {}, options: MessagesOptions = {}): string {
    const header = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    const message = (m: ChatMessage) => `${header(m.role)}${pyStrip(m.content)}<|eot_id|>`;
    let out = '<|begin_of_text|>';
    if (messages[0]?.role !== 'system') out += message({ role: 'system', content: or(fields.sysPrompt, 'You are a helpful assistant.') });
    messages.forEach((m, i) => {
      if (i !== 0 && m.role === 'system') fail('ERR_ARG', "'system' role is only allowed at the beginning of the conversation list.");
      if (!LLAMA3_ROLES.includes(m.role)) {
        fail('ERR_ARG', `Unknown role: '${m.role}'. Supported roles are 'assistant', 'user', and 'system'.`);
      }
      out += message(m);
    });
    return options.addGenerationPrompt === false ? out : out + header('assistant');
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    return [[tokenizer.eosId as number], ids(tokenizer, '<|eot_id|>')];
  }
}

export class R1Base extends PromptStyle {
  readonly className = 'R1Base';
  apply(prompt: string, fields: PromptFields = {}): string {
    return `${or(fields.sysPrompt, '')}<｜User｜>${prompt}<｜Assistant｜>`;
  }
  override get multiTurn(): boolean {
    return true;
  }
  /** litgpt's R1Base.apply(list of messages): a leading system message's content first, then the turns. */
  override applyMessages(messages: readonly ChatMessage[], fields: PromptFields = {}, options: MessagesOptions = {}): string {
    void fields; // litgpt's R1Base takes the system prompt from the messages only
    let rest = messages;
    let out = '';
    if (rest.length && rest[0]!.role === 'system') {
      out = rest[0]!.content;
      rest = rest.slice(1);
    }
    for (const m of rest) {
      const content = pyStrip(m.content);
      if (m.role === 'system') out += content;
      else if (m.role === 'user') out += `<｜User｜>${content}`;
      else if (m.role === 'assistant') out += `<｜Assistant｜>${content}`;
      else fail('ERR_ARG', `Unknown role: '${m.role}'. Supported roles are 'assistant', 'user', and 'system'.`);
    }
    return options.addGenerationPrompt === false ? out : out + '<｜Assistant｜>';
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    return [[tokenizer.eosId as number], ids(tokenizer, '<｜end▁of▁sentence｜>')];
  }
}

export class FreeWilly2 extends PromptStyle {
  readonly className = 'FreeWilly2';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = or(fields.sysPrompt, 'This is a system prompt, please behave and help the user.');
    return `### System:\n${sys}\n\n### User:\n${prompt}\n\n### Assistant:\n`;
  }
}

export class Platypus extends PromptStyle {
  readonly className = 'Platypus';
  apply(prompt: string): string {
    return `### Instruction:\n\n${prompt}\n\n### Response:\n`;
  }
}

export class StableCode extends PromptStyle {
  readonly className = 'StableCode';
  apply(prompt: string): string {
    return `###Instruction\n${prompt}###Response\n`;
  }
}

export class CodeLlama extends PromptStyle {
  readonly className = 'CodeLlama';
  apply(prompt: string, fields: PromptFields = {}): string {
    if (fields.sysPrompt) return `[INST] <<SYS>>\n${fields.sysPrompt}\n<</SYS>>\n\n${prompt} [/INST]`;
    return `[INST] ${prompt} [/INST]`;
  }
}

export class Phi1 extends PromptStyle {
  readonly className = 'Phi1';
  apply(prompt: string): string {
    return `${prompt}\n\nAnswer:`;
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    // 198 is '\n' in Phi's vocabulary.
    return [[tokenizer.eosId as number], ids(tokenizer, 'Answer', ':'), [198, ...ids(tokenizer, 'Answer', ':')]];
  }
}

export class Phi2 extends PromptStyle {
  readonly className = 'Phi2';
  apply(prompt: string): string {
    return `Instruct: ${prompt}\nOutput:`;
  }
}

export class Phi3 extends PromptStyle {
  readonly className = 'Phi3';
  apply(prompt: string, fields: PromptFields = {}): string {
    return `<|system|>\n${or(fields.sysPrompt, 'You are a helpful assistant.')}<|end|>\n<|user|>\n${prompt}<|end|>\n<|assistant|>\n`;
  }
}

export class Phi4 extends PromptStyle {
  readonly className = 'Phi4';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt ? `<|im_start|>system<|im_sep|>${fields.sysPrompt}<|im_end|>` : '';
    return `${sys}<|im_start|>user<|im_sep|>${prompt}<|im_end|><|im_start|>assistant<|im_sep|>`;
  }
}

const PHI4_REASONING_SYSTEM = 'You are Phi, a language model trained by Microsoft to help users. Your role as an assistant involves ' +
  'thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate ' +
  'solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, ' +
  'backtracing, and iteration to develop well-considered thinking process. Please structure your response into two main ' +
  'sections: Thought and Solution using the specified format: <think> {Thought section} </think> {Solution section}. In the ' +
  'Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as ' +
  'analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, ' +
  'refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and ' +
  'reflections from the Thought section, systematically present the final solution that you deem correct. The Solution ' +
  'section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion. Now, try to ' +
  'solve the following question through the above guidelines:';

export class Phi4Reasoning extends PromptStyle {
  readonly className = 'Phi4Reasoning';
  apply(prompt: string, fields: PromptFields = {}): string {
    // "<|im_start>system" (one bar) is litgpt's string, kept so prompts match it.
    return `<|im_start>system<|im_sep|>${or(fields.sysPrompt, PHI4_REASONING_SYSTEM)}<|im_end|>` +
      `<|im_start|>user<|im_sep|>${prompt}<|im_end|><|im_start|>assistant<|im_sep|>`;
  }
}

export class Phi4Mini extends PromptStyle {
  readonly className = 'Phi4Mini';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt ? `<|system|>${fields.sysPrompt}<|end|>` : '';
    return `${sys}<|user|>${prompt}<|end|><|assistant|>`;
  }
}

export class Phi4MiniReasoning extends PromptStyle {
  readonly className = 'Phi4MiniReasoning';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = or(fields.sysPrompt, 'Your name is Phi, an AI math expert developed by Microsoft.');
    return `<|system|>${sys}<|end|><|user|>${prompt}<|end|><|assistant|>`;
  }
}

export class TinyLlama extends PromptStyle {
  readonly className = 'TinyLlama';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = or(fields.sysPrompt, 'You are a friendly chatbot who always gives helpful, detailed, and polite answers.');
    return `<|system|>\n${sys}</s>\n<|user|>\n${prompt}</s>\n<|assistant|>\n`;
  }
}

export class Gemma extends PromptStyle {
  readonly className = 'Gemma';
  apply(prompt: string): string {
    return `<start_of_turn>user\n${prompt}<end_of_turn>\n<start_of_turn>model\n`;
  }
}

export class OLMo extends PromptStyle {
  readonly className = 'OLMo';
  apply(prompt: string): string {
    return `<|endoftext|><|user|>\n${prompt}\n<|assistant|>\n`;
  }
}

/** litgpt's ChatML base: `<|im_start|>system\n{sys}<|im_end|>\n` (left out without a system message), then the user turn. */
export class ChatML extends PromptStyle {
  readonly className: string = 'ChatML';
  constructor(readonly systemMessage: string | null = null) {
    super();
  }
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt || this.systemMessage;
    const system = sys ? `<|im_start|>system\n${sys}<|im_end|>\n` : '';
    return `${system}<|im_start|>user\n${prompt}<|im_end|>\n<|im_start|>assistant\n`;
  }
}

export class Qwen2_5 extends ChatML {
  override readonly className = 'Qwen2_5';
  constructor() {
    super('You are Qwen, created by Alibaba Cloud. You are a helpful assistant.');
  }
}

export class Qwen2_5_Math extends ChatML {
  override readonly className = 'Qwen2_5_Math';
  constructor() {
    super('Please reason step by step, and put your final answer within \\boxed{}.');
  }
}

export class QwQ extends ChatML {
  override readonly className = 'QwQ';
  constructor() {
    super('You are a helpful and harmless assistant. You are Qwen developed by Alibaba. You should think step-by-step.');
  }
}

export class Qwen3 extends ChatML {
  override readonly className = 'Qwen3';
  constructor() {
    super();
  }
}

export class SmolLM2 extends ChatML {
  override readonly className = 'SmolLM2';
  constructor() {
    super('You are a helpful AI assistant named SmolLM, trained by Hugging Face');
  }
}

export class Salamandra extends ChatML {
  override readonly className = 'Salamandra';
  constructor() {
    super('I am Salamandra, an AI language model developed at the Barcelona Supercomputing Centre (BSC) by the Language ' +
      'Technologies Unit. My knowledge base was last updated on August 2023. Today Date: 2024-09-30\nSoy Salamandra, un ' +
      'modelo lingüístico de IA desarrollado en el Barcelona Supercomputing Centre (BSC) por la Language Technologies Unit. ' +
      'Mi base de conocimientos se actualizó por última vez en agosto de 2023.\nSoc Salamandra, un model de llenguatge ' +
      'd\'IA desenvolupat al Barcelona Supercomputing Centre (BSC) per la Language Technologies Unit.');
  }
}

/**
 * The model's own chat template (not a litgpt style): made unbound by name, then bound to a tokenizer folder's
 * tokenizer_config.json with `forTokenizer`. A single prompt is one user turn (plus a system turn for sysPrompt);
 * stop tokens are EOS and the template's end-of-turn marker where the vocabulary has it.
 */
export class ChatTemplate extends PromptStyle {
  readonly className = 'ChatTemplate';
  constructor(readonly renderer: ChatTemplateRenderer | null = null) {
    super();
  }
  override get classPath(): string {
    return 'litlora.prompts.ChatTemplate';
  }
  override get multiTurn(): boolean {
    return true;
  }
  #bound(): ChatTemplateRenderer {
    if (!this.renderer) {
      fail('ERR_CONFIG', 'the chat_template prompt style is not bound to a tokenizer yet; call style.forTokenizer(tokenizer) ' +
        '(litlora does this for finetune, generate and chat)');
    }
    return this.renderer;
  }
  apply(prompt: string, fields: PromptFields = {}): string {
    const user = fields.input ? `${prompt}\n\n${fields.input}` : prompt;
    const messages: ChatMessage[] = fields.sysPrompt ? [{ role: 'system', content: fields.sysPrompt }] : [];
    return this.#bound().render([...messages, { role: 'user', content: user }], { addGenerationPrompt: true });
  }
  override applyMessages(messages: readonly ChatMessage[], fields: PromptFields = {}, options: MessagesOptions = {}): string {
    const list = checkMessages(messages);
    const withSystem = fields.sysPrompt && list[0]!.role !== 'system' ? [{ role: 'system', content: fields.sysPrompt }, ...list] : list;
    return this.#bound().render(withSystem, { addGenerationPrompt: options.addGenerationPrompt ?? true });
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    const out = super.stopTokens(tokenizer);
    for (const token of this.#bound().endOfTurnTokens()) {
      let id: number;
      try {
        id = tokenizer.tokenToId(token);
      } catch {
        continue; // a marker the vocabulary lacks cannot be generated
      }
      if (!out.some((s) => s.length === 1 && s[0] === id)) out.push([id]);
    }
    return out;
  }
  override forTokenizer(tokenizer: TemplateTokenizer): PromptStyle {
    if (this.renderer) return this;
    return new ChatTemplate(ChatTemplateRenderer.fromTokenizerConfig(tokenizer.config, { dir: tokenizer.dir }));
  }
}

/** litgpt's `prompt_styles` table (every name), plus `default` and `chat_template`, which litgpt does not have. */
export const PROMPT_STYLES: Readonly<Record<string, () => PromptStyle>> = Object.freeze({
  alpaca: () => new Alpaca(),
  flan: () => new FLAN(),
  longform: () => new Longform(),
  'stablelm-alpha': () => new StableLMAlpha(),
  'stablelm-zephyr': () => new StableLMZephyr(),
  falcon: () => new Falcon(),
  'llama2-function-calling': () => new Llama2FunctionCalling(),
  llama2: () => new Llama2(),
  freewilly2: () => new FreeWilly2(),
  platypus: () => new Platypus(),
  stablecode: () => new StableCode(),
  codellama: () => new CodeLlama(),
  'phi-1': () => new Phi1(),
  'phi-2': () => new Phi2(),
  'phi-3': () => new Phi3(),
  'phi-4': () => new Phi4(),
  'phi-4-reasoning': () => new Phi4Reasoning(),
  'phi-4-mini': () => new Phi4Mini(),
  'phi-4-mini-reasoning': () => new Phi4MiniReasoning(),
  tinyllama: () => new TinyLlama(),
  gemma: () => new Gemma(),
  llama3: () => new Llama3(),
  olmo: () => new OLMo(),
  'qwen2.5': () => new Qwen2_5(),
  'qwen2.5-math': () => new Qwen2_5_Math(),
  qwq: () => new QwQ(),
  qwen3: () => new Qwen3(),
  smollm2: () => new SmolLM2(),
  salamandra: () => new Salamandra(),
  default: () => new Default(),
  chat_template: () => new ChatTemplate(),
});

/** Every class of litgpt/prompts.py by its name (prompt_style.yaml's `class_path: litgpt.prompts.<name>`). */
export const PROMPT_STYLE_CLASSES: Readonly<Record<string, () => PromptStyle>> = Object.freeze({
  Default: () => new Default(), Alpaca: () => new Alpaca(), FLAN: () => new FLAN(), Longform: () => new Longform(),
  StableLMAlpha: () => new StableLMAlpha(), StableLMZephyr: () => new StableLMZephyr(), Falcon: () => new Falcon(),
  Falcon3: () => new Falcon3(), Llama2FunctionCalling: () => new Llama2FunctionCalling(), Llama2: () => new Llama2(),
  Llama3: () => new Llama3(), R1Base: () => new R1Base(), FreeWilly2: () => new FreeWilly2(), Platypus: () => new Platypus(),
  StableCode: () => new StableCode(), CodeLlama: () => new CodeLlama(), Phi1: () => new Phi1(), Phi2: () => new Phi2(),
  Phi3: () => new Phi3(), Phi4: () => new Phi4(), Phi4Reasoning: () => new Phi4Reasoning(), Phi4Mini: () => new Phi4Mini(),
  Phi4MiniReasoning: () => new Phi4MiniReasoning(), TinyLlama: () => new TinyLlama(), Gemma: () => new Gemma(),
  OLMo: () => new OLMo(), ChatML: () => new ChatML(), Qwen2_5: () => new Qwen2_5(), Qwen2_5_Math: () => new Qwen2_5_Math(),
  QwQ: () => new QwQ(), Qwen3: () => new Qwen3(), SmolLM2: () => new SmolLM2(), Salamandra: () => new Salamandra(),
});

/** The module litlora's own styles are recorded under in prompt_style.yaml. */
const LITLORA_CLASSES: Record<string, () => PromptStyle> = { ChatTemplate: () => new ChatTemplate() };

/** litgpt's `model_name_to_prompt_style`, rule for rule in its order (re.search semantics: a match anywhere). */
const MODEL_NAME_RULES: readonly [RegExp, () => PromptStyle][] = [
  [/stablelm-tuned-alpha/, () => new StableLMAlpha()],
  [/stablelm-zephyr-3b/, () => new StableLMZephyr()],
  [/stablecode-instruct/, () => new StableCode()],
  [/Falcon3.*-Instruct/, () => new Falcon3()],
  [/falcon.*-instruct/, () => new Falcon()],
  [/Llama-2-7b-chat-hf-function-calling-v2/, () => new Llama2FunctionCalling()],
  [/Llama-2.*-chat/, () => new Llama2()],
  [/Llama-3.*-Instruct/, () => new Llama3()],
  [/OLMo-2.*-(Instruct|SFT|DPO)/, () => new Llama3()],
  [/R1/, () => new R1Base()],
  [/FreeWilly2/, () => new FreeWilly2()],
  [/Platypus/, () => new Platypus()],
  [/CodeLlama|Mi[sx]tral.*Instruct/, () => new CodeLlama()],
  [/phi-1/, () => new Phi1()],
  [/phi-2/, () => new Phi2()],
  [/Phi-3/, () => new Phi3()],
  [/Phi-4-reasoning/, () => new Phi4Reasoning()],
  [/Phi-4-mini-reasoning/, () => new Phi4MiniReasoning()],
  [/Phi-4-mini/, () => new Phi4Mini()],
  [/phi-4/, () => new Phi4()],
  [/tiny-llama.*chat/, () => new TinyLlama()],
  [/(Code)?Gemma.*-it/, () => new Gemma()],
  [/OLMo.*-hf/, () => new OLMo()],
  [/Qwen2\.5-Math-.*/, () => new Qwen2_5_Math()],
  [/Qwen2\.5-.*/, () => new Qwen2_5()],
  [/QwQ-.*/, () => new QwQ()],
  [/Qwen3-.*/, () => new Qwen3()],
  [/SmolLM2.*-Instruct/, () => new SmolLM2()],
  [/salamandra-.*-instruct/, () => new Salamandra()],
];

/** litgpt's `model_name_to_prompt_style`: the first rule whose pattern occurs in the name, else Default. */
export function modelNameToPromptStyle(modelName: string): PromptStyle {
  for (const [pattern, make] of MODEL_NAME_RULES) if (pattern.test(modelName)) return make();
  return new Default();
}

/** The text of prompt_style.yaml exactly as litgpt's `yaml.dump({"class_path": ...})` writes it. */
export function promptStyleYaml(style: PromptStyle | string): string {
  const s = typeof style === 'string' ? PromptStyle.fromName(style) : style;
  return `class_path: ${s.classPath}\n`;
}

/** Writes `dir/prompt_style.yaml` atomically (temp file, fsync, rename). */
export function savePromptStyle(style: PromptStyle | string, dir: string): string {
  const path = join(dir, 'prompt_style.yaml');
  writeFileAtomicSync(path, promptStyleYaml(style));
  return path;
}

/**
 * The prompt style of a checkpoint folder (a chat_template style comes back unbound: bind it with
 * `forTokenizer`), chosen as litgpt's generate and chat choose it: `dir/prompt_style.yaml`
 * where there is one (litgpt's `load_prompt_style`; every finetune folder has it), else the style of the model's
 * name in `dir/model_config.yaml` (`PromptStyle.from_config`: a base folder from `litgpt download` or `litlora init`).
 * A folder with neither is ERR_CHECKPOINT_MISSING; a class_path not known here is ERR_CONFIG.
 */
export function loadPromptStyle(dir: string): PromptStyle {
  const path = join(dir, 'prompt_style.yaml');
  const configPath = join(dir, 'model_config.yaml');
  if (!existsSync(path) && existsSync(configPath)) {
    const config = configFromParsed(parseYaml(readFileSync(configPath, 'utf8'), configPath), configPath);
    return PromptStyle.fromConfig(config);
  }
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'), path).value;
  } catch (e: any) {
    if (e?.code === 'ERR_CONFIG') throw e; // parseYaml's message names the file already
    if (e?.code === 'ENOENT') {
      fail('ERR_CHECKPOINT_MISSING', `${dir} has no prompt_style.yaml, nor a model_config.yaml whose model name picks a style; ` +
        'expected a litgpt checkpoint folder (a base folder or a finetune run\'s final/, step-XXXXXX/)');
    }
    fail('ERR_CONFIG', `cannot read ${path}: ${e?.message ?? e}`);
  }
  const classPath = (doc as any)?.class_path;
  if (typeof classPath !== 'string') {
    fail('ERR_CONFIG', `${path}: expected a mapping with a string 'class_path' (e.g. litgpt.prompts.Alpaca), got ${JSON.stringify(doc)}`);
  }
  const cut = classPath.lastIndexOf('.');
  const className = classPath.slice(cut + 1);
  const module = cut >= 0 ? classPath.slice(0, cut) : 'litgpt.prompts';
  const table = module === 'litgpt.prompts' ? PROMPT_STYLE_CLASSES : module === 'litlora.prompts' ? LITLORA_CLASSES : {};
  const make = Object.hasOwn(table, className) ? table[className] : undefined;
  if (!make) {
    fail('ERR_CONFIG', `${path}: prompt style '${classPath}' is not supported; expected litgpt.prompts.<one of ` +
      `${Object.keys(PROMPT_STYLE_CLASSES).join(', ')}> or litlora.prompts.ChatTemplate. Write one of those into the file or ` +
      'remove it to use the model\'s default.');
  }
  return make();
}
