// litgpt's prompt styles: the exact strings of litgpt/prompts.py (Lightning-AI/litgpt, the current version with
// `sys_prompt`), the name table (`prompt_styles`), the
// model-name mapping (`model_name_to_prompt_style`) and prompt_style.yaml (`class_path: litgpt.prompts.<Class>`).
//
// Only the styles of the families litlora runs are here (Pythia/GPT-NeoX base → Default, TinyLlama, Llama 2/3,
// Qwen2.5, SmolLM2), plus the dataset styles (Alpaca, FLAN, Longform) and a few cheap plain-text ones.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import { fail } from '../errors.js';
import { configFromParsed } from '../model/config.js';
import { parseYaml } from '../io/yaml.js';

/** What a prompt style needs from a tokenizer to name its stop sequences. */
export interface StopTokenSource {
  readonly eosId: number | null;
  tokenToId(token: string): number;
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

  /** Token-id sequences that end a generation; the first is always [eos]. */
  stopTokens(tokenizer: StopTokenSource): number[][] {
    return tokenizer.eosId === null ? [] : [[tokenizer.eosId]];
  }

  /** `prompt_styles[name]()`; an unknown name is ERR_CONFIG listing the known ones. */
  static fromName(name: string): PromptStyle {
    const make = PROMPT_STYLES[name];
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

const text = (s: string | undefined): string => s ?? '';

export class Default extends PromptStyle {
  readonly className = 'Default';
  apply(prompt: string): string {
    return prompt;
  }
}

export class Alpaca extends PromptStyle {
  readonly className = 'Alpaca';
  apply(prompt: string, fields: PromptFields = {}): string {
    // litgpt tests `kwargs.get("input")`: an empty string counts as no input.
    if (fields.input) {
      const sys = fields.sysPrompt || 'Below is an instruction that describes a task, paired with an input that provides ' +
        'further context. Write a response that appropriately completes the request.\n\n';
      return `${sys}### Instruction:\n${prompt}\n\n### Input:\n${text(fields.input)}\n\n### Response:\n`;
    }
    const sys = fields.sysPrompt ||
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';
    return `${sys}### Instruction:\n${prompt}\n\n### Response:\n`;
  }
}

export class FLAN extends PromptStyle {
  readonly className = 'FLAN';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt ||
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';
    return `${sys}### Instruction:\n${prompt}\n\n### Response:\n`;
  }
}

export class Longform extends PromptStyle {
  readonly className = 'Longform';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt || 'Below is an instruction that describes a task, paired with an input that provides ' +
      'further context. Write a response that appropriately completes the request.\n\n';
    return `${sys}### Instruction:\n${prompt}\n\n### Response:\n`;
  }
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
    const sys = fields.sysPrompt || LLAMA2_SYSTEM;
    return `[INST] <<SYS>>\n${sys}\n<</SYS>>\n\n ${prompt} [/INST] `;
  }
}

export class Llama3 extends PromptStyle {
  readonly className = 'Llama3';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt || 'You are a helpful assistant.';
    return '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
      `${sys}<|eot_id|>` +
      '<|start_header_id|>user<|end_header_id|>\n\n' +
      `${prompt}<|eot_id|>` +
      '<|start_header_id|>assistant<|end_header_id|>\n\n';
  }
  override stopTokens(tokenizer: StopTokenSource): number[][] {
    return [...super.stopTokens(tokenizer), [tokenizer.tokenToId('<|eot_id|>')]];
  }
}

export class TinyLlama extends PromptStyle {
  readonly className = 'TinyLlama';
  apply(prompt: string, fields: PromptFields = {}): string {
    const sys = fields.sysPrompt || 'You are a friendly chatbot who always gives helpful, detailed, and polite answers.';
    return `<|system|>\n${sys}</s>\n<|user|>\n${prompt}</s>\n<|assistant|>\n`;
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

export class Phi2 extends PromptStyle {
  readonly className = 'Phi2';
  apply(prompt: string): string {
    return `Instruct: ${prompt}\nOutput:`;
  }
}

export class Gemma extends PromptStyle {
  readonly className = 'Gemma';
  apply(prompt: string): string {
    return `<start_of_turn>user\n${prompt}<end_of_turn>\n<start_of_turn>model\n`;
  }
}

/** litgpt's ChatML base: `<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n…assistant\n`. */
export class ChatML extends PromptStyle {
  readonly className: string = 'ChatML';
  constructor(readonly systemMessage: string | null = null) {
    super();
  }
  apply(prompt: string, fields: PromptFields = {}): string {
    // Python formats a None system message as the string "None"; kept for identical prompts.
    const sys = fields.sysPrompt || (this.systemMessage ?? 'None');
    return `<|im_start|>system\n${sys}<|im_end|>\n<|im_start|>user\n${prompt}<|im_end|>\n<|im_start|>assistant\n`;
  }
}

export class Qwen2_5 extends ChatML {
  override readonly className = 'Qwen2_5';
  constructor() {
    super('You are Qwen, created by Alibaba Cloud. You are a helpful assistant.');
  }
}

export class SmolLM2 extends ChatML {
  override readonly className = 'SmolLM2';
  constructor() {
    super('You are a helpful AI assistant named SmolLM, trained by Hugging Face');
  }
}

/** litgpt's `prompt_styles` table, restricted to the styles implemented here. */
export const PROMPT_STYLES: Readonly<Record<string, () => PromptStyle>> = Object.freeze({
  alpaca: () => new Alpaca(),
  flan: () => new FLAN(),
  longform: () => new Longform(),
  llama2: () => new Llama2(),
  platypus: () => new Platypus(),
  stablecode: () => new StableCode(),
  codellama: () => new CodeLlama(),
  'phi-2': () => new Phi2(),
  tinyllama: () => new TinyLlama(),
  gemma: () => new Gemma(),
  llama3: () => new Llama3(),
  'qwen2.5': () => new Qwen2_5(),
  smollm2: () => new SmolLM2(),
  // Not in litgpt's name table (it has no name for Default), but handy for `--data.prompt_style default`.
  default: () => new Default(),
});

const BY_CLASS_NAME: Record<string, () => PromptStyle> = {
  Default: () => new Default(), Alpaca: () => new Alpaca(), FLAN: () => new FLAN(), Longform: () => new Longform(),
  Llama2: () => new Llama2(), Llama3: () => new Llama3(), TinyLlama: () => new TinyLlama(),
  Platypus: () => new Platypus(), StableCode: () => new StableCode(), CodeLlama: () => new CodeLlama(),
  Phi2: () => new Phi2(), Gemma: () => new Gemma(), ChatML: () => new ChatML(), Qwen2_5: () => new Qwen2_5(),
  SmolLM2: () => new SmolLM2(),
};

/**
 * litgpt's `model_name_to_prompt_style`, in its order, for the styles implemented here; names that would map to a
 * style not implemented here (e.g. Phi-3, R1, Falcon-instruct) fall through to Default, as unknown names do.
 */
export function modelNameToPromptStyle(modelName: string): PromptStyle {
  const rules: [RegExp, () => PromptStyle][] = [
    [/stablecode-instruct/, () => new StableCode()],
    [/Llama-2-7b-chat-hf-function-calling-v2/, () => new Default()], // Llama2FunctionCalling: not implemented
    [/Llama-2.*-chat/, () => new Llama2()],
    [/Llama-3.*-Instruct/, () => new Llama3()],
    [/OLMo-2.*-(Instruct|SFT|DPO)/, () => new Llama3()],
    [/R1/, () => new Default()], // R1Base: not implemented
    [/Platypus/, () => new Platypus()],
    [/CodeLlama|Mi[sx]tral.*Instruct/, () => new CodeLlama()],
    [/phi-2/, () => new Phi2()],
    [/tiny-llama.*chat/, () => new TinyLlama()],
    [/(Code)?Gemma.*-it/, () => new Gemma()],
    [/Qwen2\.5-Math-.*/, () => new Default()], // Qwen2_5_Math: not implemented
    [/Qwen2\.5-.*/, () => new Qwen2_5()],
    [/SmolLM2.*-Instruct/, () => new SmolLM2()],
  ];
  for (const [pattern, make] of rules) if (pattern.test(modelName)) return make();
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
 * The prompt style of a checkpoint folder, chosen as litgpt's generate and chat choose it: `dir/prompt_style.yaml`
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
  const make = BY_CLASS_NAME[className];
  if (!make || (cut >= 0 && classPath.slice(0, cut) !== 'litgpt.prompts')) {
    fail('ERR_CONFIG', `${path}: prompt style '${classPath}' is not supported; expected litgpt.prompts.<one of ` +
      `${Object.keys(BY_CLASS_NAME).join(', ')}>. Write one of those into the file or remove it to use the model's default.`);
  }
  return make();
}
