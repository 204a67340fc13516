import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  configFromName, PromptStyle, PROMPT_STYLES, PROMPT_STYLE_CLASSES, loadPromptStyle, modelNameToPromptStyle, promptStyleYaml, savePromptStyle, Tokenizer, writeConfig,
} from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { encodePrompt } from '../ts/generate/generate.js';
import { runCli } from '../ts/cli/main.js';

// Expected strings transcribed from Lightning-AI/litgpt litgpt/prompts.py (current, with sys_prompt).
const ALPACA_NO_INPUT = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nReverse: abc\n\n### Response:\n';
const ALPACA_INPUT = 'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate\n\n### Input:\nHallo\n\n### Response:\n';

test('Alpaca: with and without input, exactly as litgpt (an empty input counts as none)', () => {
  const alpaca = PromptStyle.fromName('alpaca');
  assert.is(alpaca.apply('Reverse: abc'), ALPACA_NO_INPUT);
  assert.is(alpaca.apply('Reverse: abc', { input: '' }), ALPACA_NO_INPUT);
  assert.is(alpaca.apply('Translate', { input: 'Hallo' }), ALPACA_INPUT);
  assert.is(alpaca.apply('x', { sysPrompt: 'SYS ' }), 'SYS ### Instruction:\nx\n\n### Response:\n');
  assert.is(alpaca.classPath, 'litgpt.prompts.Alpaca');
});

test('model-family styles: Default, TinyLlama, Llama 2, Llama 3, Qwen2.5, SmolLM2, FLAN, Phi-2', () => {
  const p = 'What is 2+2?';
  assert.is(PromptStyle.fromName('default').apply(p), p);
  assert.is(PromptStyle.fromName('tinyllama').apply(p),
    `<|system|>\nYou are a friendly chatbot who always gives helpful, detailed, and polite answers.</s>\n<|user|>\n${p}</s>\n<|assistant|>\n`);
  assert.is(PromptStyle.fromName('llama3').apply(p),
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
    `<|start_header_id|>user<|end_header_id|>\n\n${p}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`);
  assert.is(PromptStyle.fromName('qwen2.5').apply(p),
    `<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`);
  assert.is(PromptStyle.fromName('smollm2').apply(p),
    `<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`);
  const llama2 = PromptStyle.fromName('llama2').apply(p);
  assert.ok(llama2.startsWith('[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe.  Your answers'));
  assert.ok(llama2.endsWith(" please don't share false information.\n<</SYS>>\n\n What is 2+2? [/INST] "));
  assert.is(PromptStyle.fromName('flan').apply(p), `Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n${p}\n\n### Response:\n`);
  assert.is(PromptStyle.fromName('phi-2').apply(p), `Instruct: ${p}\nOutput:`);
  assert.is(PromptStyle.fromName('codellama').apply(p), `[INST] ${p} [/INST]`);
});

test('fromName: unknown names are ERR_CONFIG listing the known ones', async () => {
  await assertCode(() => PromptStyle.fromName('nope'), 'ERR_CONFIG', /unknown prompt style 'nope'.*alpaca/);
});

test('fromConfig follows litgpt model_name_to_prompt_style', () => {
  const cases: [string, string][] = [
    ['pythia-14m', 'Default'], ['pythia-160m', 'Default'], ['tiny-llama-1.1b', 'Default'],
    ['tiny-llama-1.1b-chat', 'TinyLlama'], ['Llama-2-7b-chat-hf', 'Llama2'], ['Llama-3.2-1B', 'Default'],
    ['Llama-3.2-1B-Instruct', 'Llama3'], ['Llama-3.1-8B-Instruct', 'Llama3'], ['Qwen2.5-0.5B', 'Qwen2_5'],
    ['Qwen2.5-1.5B-Instruct', 'Qwen2_5'], ['SmolLM2-135M', 'Default'], ['SmolLM2-135M-Instruct', 'SmolLM2'],
    ['CodeLlama-7b-Instruct-hf', 'CodeLlama'], ['Mistral-7B-Instruct-v0.3', 'CodeLlama'], ['phi-2', 'Phi2'],
    ['Gemma-2b-it', 'Gemma'], ['gemma-2b-it', 'Default'],
  ];
  for (const [name, cls] of cases) {
    assert.is(PromptStyle.fromConfig({ name }).className, cls, name);
    assert.is(modelNameToPromptStyle(name).className, cls, name);
  }
});

test('prompt_style.yaml: written byte-for-byte as PyYAML dumps it, atomically, and read back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-ps-'));
  try {
    const py = runPython(`import yaml\nfor c in ['Alpaca', 'Llama3', 'Qwen2_5', 'Default']:\n    print(repr(yaml.dump({'class_path': f'litgpt.prompts.{c}'})))`);
    const expected = py.stdout.trim().split('\n').map((l) => l.slice(1, -1).replace(/\\n/g, '\n'));
    assert.equal(['alpaca', 'llama3', 'qwen2.5', 'default'].map((n) => promptStyleYaml(n)), expected);
    const path = savePromptStyle('alpaca', dir);
    assert.is(readFileSync(path, 'utf8'), 'class_path: litgpt.prompts.Alpaca\n');
    assert.is(loadPromptStyle(dir).className, 'Alpaca');
    savePromptStyle(PromptStyle.fromName('smollm2'), dir);
    assert.is(loadPromptStyle(dir).className, 'SmolLM2');
    assert.equal(readFileSync(path, 'utf8'), 'class_path: litgpt.prompts.SmolLM2\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadPromptStyle of a folder without prompt_style.yaml (a base folder): the style of model_config.yaml\'s name, as litgpt generate picks it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-ps-'));
  try {
    await writeConfig(join(dir, 'model_config.yaml'), configFromName('tiny-llama-1.1b-chat'));
    assert.is(loadPromptStyle(dir).className, 'TinyLlama');
    await writeConfig(join(dir, 'model_config.yaml'), configFromName('pythia-14m'));
    assert.is(loadPromptStyle(dir).className, 'Default');
    savePromptStyle('alpaca', dir); // a finetune folder's own file wins
    assert.is(loadPromptStyle(dir).className, 'Alpaca');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prompt_style.yaml: unknown class, bad YAML shape and a missing file are clear errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-ps-'));
  try {
    await assertCode(() => loadPromptStyle(dir), 'ERR_CHECKPOINT_MISSING', /has no prompt_style\.yaml, nor a model_config\.yaml/);
    writeFileSync(join(dir, 'prompt_style.yaml'), 'class_path: my.module.Custom\n');
    await assertCode(() => loadPromptStyle(dir), 'ERR_CONFIG', /my\.module\.Custom.*not supported/);
    writeFileSync(join(dir, 'prompt_style.yaml'), '- just a list\n');
    await assertCode(() => loadPromptStyle(dir), 'ERR_CONFIG', /class_path/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stop tokens: [eos] for every style, plus <|eot_id|> for Llama 3', () => {
  const tok = Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'llama3'));
  assert.equal(PromptStyle.fromName('alpaca').stopTokens(tok), [[tok.eosId!]]);
  assert.equal(PromptStyle.fromName('llama3').stopTokens(tok), [[tok.eosId!], [tok.tokenToId('<|eot_id|>')]]);
});

// What litgpt's prompts.py itself renders (test/reference/make_prompt_fixtures.py executes it).
const LITGPT = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'prompts', 'litgpt_prompts.json'), 'utf8'));

test('every class of litgpt prompts.py renders exactly its strings: with and without sys_prompt and input', () => {
  assert.equal(Object.keys(PROMPT_STYLE_CLASSES).sort(), Object.keys(LITGPT.styles).filter((c) => c !== 'PromptStyle').sort());
  let checked = 0;
  for (const [className, entry] of Object.entries<any>(LITGPT.styles)) {
    const style = PROMPT_STYLE_CLASSES[className]!();
    assert.is(style.className, className);
    for (const c of entry.cases) {
      const fields: Record<string, string> = {};
      if (c.input !== undefined) fields.input = c.input;
      if (c.sys_prompt !== undefined) fields.sysPrompt = c.sys_prompt;
      assert.is(style.apply(c.prompt, fields), c.expected, `${className} ${JSON.stringify(c)}`);
      checked++;
    }
  }
  assert.ok(checked >= 33 * 6);
});

test('stop tokens of every class equal litgpt\'s (a stand-in tokenizer: eos 2, other tokens 1000 + index)', () => {
  const tokens: string[] = LITGPT.tokens;
  const tokenizer = {
    eosId: LITGPT.eos_id as number,
    tokenToId: (t: string) => { const i = tokens.indexOf(t); if (i < 0) throw new Error(`no ${t}`); return 1000 + i; },
  };
  for (const [className, entry] of Object.entries<any>(LITGPT.styles)) {
    assert.equal(PROMPT_STYLE_CLASSES[className]!().stopTokens(tokenizer), entry.stop_tokens, className);
  }
});

test('multi-turn forms: Llama3 and R1Base render a message list as litgpt does; single-turn styles refuse one', async () => {
  for (const className of ['Llama3', 'R1Base']) {
    const style = PROMPT_STYLE_CLASSES[className]!();
    assert.ok(style.multiTurn);
    for (const c of LITGPT.styles[className].conversations) {
      assert.is(style.applyMessages(c.messages, c.sys_prompt ? { sysPrompt: c.sys_prompt } : {}), c.expected, `${className} ${JSON.stringify(c)}`);
    }
  }
  await assertCode(() => PromptStyle.fromName('llama3').applyMessages([{ role: 'tool', content: 'x' }]), 'ERR_ARG', /Unknown role: 'tool'/);
  await assertCode(() => PromptStyle.fromName('llama3').applyMessages([{ role: 'user', content: 'x' }, { role: 'system', content: 'y' }]),
    'ERR_ARG', /'system' role is only allowed at the beginning/);
  assert.not.ok(PromptStyle.fromName('alpaca').multiTurn);
  await assertCode(() => PromptStyle.fromName('alpaca').applyMessages([{ role: 'user', content: 'x' }]), 'ERR_ARG', /Alpaca prompt style has no multi-turn form/);
});

test('every name of litgpt\'s prompt_styles makes its class; every litgpt config name maps to the style litgpt picks', () => {
  for (const [name, className] of Object.entries<string>(LITGPT.prompt_styles)) assert.is(PromptStyle.fromName(name).className, className, name);
  const extra = Object.keys(PROMPT_STYLES).filter((n) => !(n in LITGPT.prompt_styles));
  assert.equal(extra.sort(), ['chat_template', 'default']);
  const names = Object.entries<string>(LITGPT.model_names);
  assert.ok(names.length >= 200);
  for (const [name, className] of names) assert.is(modelNameToPromptStyle(name).className, className, name);
});

test('prompt_style.yaml of every litgpt class reads back as that class', () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-ps-'));
  try {
    for (const className of Object.keys(PROMPT_STYLE_CLASSES)) {
      writeFileSync(join(dir, 'prompt_style.yaml'), `class_path: litgpt.prompts.${className}\n`);
      assert.is(loadPromptStyle(dir).className, className);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --sys_prompt: the system prompt reaches the prompt style (encodePrompt), and the flag is listed', async () => {
  const tok = Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'llama3'));
  const style = PromptStyle.fromName('llama3');
  assert.equal(Array.from(encodePrompt(tok, 'hi', { promptStyle: style, sysPrompt: 'Answer in French.' })),
    Array.from(tok.encode(style.apply('hi', { sysPrompt: 'Answer in French.' }))));
  assert.ok(style.apply('hi', { sysPrompt: 'Answer in French.' }).includes('system<|end_header_id|>\n\nAnswer in French.<|eot_id|>'));
  let out = '';
  assert.is(await runCli(['generate', '--help'], { out: (t) => { out += t; }, err: () => {}, cwd: process.cwd() }), 0);
  assert.match(out, /--sys_prompt/);
});

test.run();
