import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PromptStyle, loadPromptStyle, savePromptStyle } from '../ts/index.js';
import { ChatTemplateRenderer, type ChatMessage } from '../ts/data/chat_template.js';
import { Conversation } from '../ts/data/conversation.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'chat_templates');
const CONFIGS: Record<string, any> = Object.fromEntries(readdirSync(FIXTURES).filter((f) => f.endsWith('.json'))
  .map((f) => [f.slice(0, -5), JSON.parse(readFileSync(join(FIXTURES, f), 'utf8'))]));
const temp = tempFolders();
test.after(() => temp.removeAll());

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'What is 2+2?' }],
  [{ role: 'user', content: '  Hi there!\n' }, { role: 'assistant', content: 'Hello. How can I help?' }, { role: 'user', content: 'Tell me a joke.' }],
  [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Ünïcödé & <tags> {{ braces }}' },
    { role: 'assistant', content: 'Ok.' }, { role: 'user', content: 'Again' }],
];

/** transformers' apply_chat_template(tokenize=False) over a tokenizer with the fixture's special tokens and template. */
function transformersRender(): Record<string, { out?: string; error?: string }[]> {
  const code = `
import json
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
cases = json.loads(${JSON.stringify(JSON.stringify({ configs: CONFIGS, conversations: CONVERSATIONS }))})
result = {}
for name, cfg in cases["configs"].items():
    special = {k: v for k, v in cfg.items() if k.endswith("_token") and v is not None}
    vocab = {t: i for i, t in enumerate(sorted(set(special.values()) | {"[UNK]"}))}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")), **special)
    template = cfg["chat_template"]
    tok.chat_template = {t["name"]: t["template"] for t in template} if isinstance(template, list) else template
    rows = []
    for gen in (True, False):
        for conv in cases["conversations"]:
            try:
                rows.append({"out": tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)})
            except Exception as e:
                rows.append({"error": str(e)})
    result[name] = rows
print(json.dumps(result))
`;
  return JSON.parse(runPython(code).stdout);
}

test('chat templates of Llama 3, Qwen2.5, Gemma 2 and Phi-3 render as transformers\' apply_chat_template', async () => {
  const expected = transformersRender();
  let compared = 0;
  for (const [name, config] of Object.entries(CONFIGS)) {
    const renderer = ChatTemplateRenderer.fromTokenizerConfig(config);
    let i = 0;
    for (const addGenerationPrompt of [true, false]) {
      for (const conversation of CONVERSATIONS) {
        const want = expected[name]![i++]!;
        if (want.error !== undefined) {
          await assertCode(() => renderer.render(conversation, { addGenerationPrompt }), 'ERR_ARG', new RegExp(want.error.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
        } else {
          assert.is(renderer.render(conversation, { addGenerationPrompt }), want.out, `${name} ${addGenerationPrompt} ${JSON.stringify(conversation)}`);
        }
        compared++;
      }
    }
  }
  assert.ok(expected.gemma2!.some((r) => r.error?.includes('System role not supported')), 'gemma refuses a system turn in both');
  assert.is(compared, Object.keys(CONFIGS).length * 6);
});

test('a list of named templates: "default" unless a name is given; an unknown name or a missing template is ERR_CONFIG', async () => {
  const config = CONFIGS.named;
  assert.is(ChatTemplateRenderer.fromTokenizerConfig(config).render([{ role: 'user', content: 'x' }]), '[user] x\n[assistant] ');
  assert.is(ChatTemplateRenderer.fromTokenizerConfig(config, { name: 'tool_use' }).render([{ role: 'user', content: 'x' }]), 'TOOLS <s>x');
  await assertCode(() => ChatTemplateRenderer.fromTokenizerConfig(config, { name: 'rag' }), 'ERR_CONFIG', /no chat template named 'rag'.*'default', 'tool_use'/);
  await assertCode(() => ChatTemplateRenderer.fromTokenizerConfig({ eos_token: '</s>' }), 'ERR_CONFIG', /has no chat_template/);
  await assertCode(() => ChatTemplateRenderer.fromTokenizerConfig({ chat_template: '{% if %}' }), 'ERR_CONFIG', /does not parse/);
});

/** A stand-in for Tokenizer: the fixture's tokenizer_config and a small vocabulary. */
function tokenizerFor(name: string, vocab: string[], dir: string | null = null) {
  const config = CONFIGS[name];
  return {
    config, dir,
    eosId: vocab.indexOf(config.eos_token),
    tokenToId(token: string): number {
      const id = vocab.indexOf(token);
      if (id < 0) throw Object.assign(new Error(`no ${token}`), { code: 'ERR_CONFIG' });
      return id;
    },
  };
}

test('--prompt_style chat_template: one prompt is one user turn; stop tokens are EOS plus the template\'s end-of-turn token', async () => {
  await assertCode(() => PromptStyle.fromName('chat_template').apply('x'), 'ERR_CONFIG', /not bound to a tokenizer/);
  const phi = PromptStyle.fromName('chat_template').forTokenizer(tokenizerFor('phi3', ['<unk>', '<s>', '<|endoftext|>', '<|end|>']));
  assert.is(phi.apply('What is 2+2?'), '<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n');
  assert.is(phi.apply('Translate', { input: 'Hallo', sysPrompt: 'Be brief.' }), '<|system|>\nBe brief.<|end|>\n<|user|>\nTranslate\n\nHallo<|end|>\n<|assistant|>\n');
  assert.equal(phi.stopTokens(tokenizerFor('phi3', ['<unk>', '<s>', '<|endoftext|>', '<|end|>'])), [[2], [3]]);
  assert.ok(phi.multiTurn);
  assert.is(phi.applyMessages([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }]),
    '<|user|>\na<|end|>\n<|assistant|>\nb<|end|>\n<|user|>\nc<|end|>\n<|assistant|>\n');
  // Qwen: EOS is <|im_end|> itself, so it is listed once; a vocabulary without the marker only stops at EOS.
  const qwenTok = tokenizerFor('qwen2.5', ['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
  assert.equal(PromptStyle.fromName('chat_template').forTokenizer(qwenTok).stopTokens(qwenTok), [[2]]);
  const gemmaTok = tokenizerFor('gemma2', ['<pad>', '<eos>', '<bos>', '<unk>']);
  assert.equal(PromptStyle.fromName('chat_template').forTokenizer(gemmaTok).stopTokens(gemmaTok), [[1]]);
  const gemmaFull = tokenizerFor('gemma2', ['<pad>', '<eos>', '<bos>', '<unk>', '<end_of_turn>']);
  assert.equal(PromptStyle.fromName('chat_template').forTokenizer(gemmaFull).stopTokens(gemmaFull), [[1], [4]]);
});

test('prompt_style.yaml records chat_template as litlora.prompts.ChatTemplate and reads it back; the template may be chat_template.jinja', () => {
  const dir = temp.make('chat-template');
  savePromptStyle('chat_template', dir);
  assert.is(readFileSync(join(dir, 'prompt_style.yaml'), 'utf8'), 'class_path: litlora.prompts.ChatTemplate\n');
  const style = loadPromptStyle(dir);
  assert.is(style.className, 'ChatTemplate');
  writeFileSync(join(dir, 'chat_template.jinja'), CONFIGS.phi3.chat_template);
  const tok = { ...tokenizerFor('phi3', ['<unk>', '<s>', '<|endoftext|>', '<|end|>'], dir), config: { eos_token: '<|endoftext|>' } };
  assert.is(style.forTokenizer(tok).apply('hi'), '<|user|>\nhi<|end|>\n<|assistant|>\n');
});

test('Conversation (litlora chat): a multi-turn style gets the whole history in each prompt; a single-turn one only the new turn', () => {
  const tok = tokenizerFor('phi3', ['<unk>', '<s>', '<|endoftext|>', '<|end|>']);
  const chat = new Conversation(PromptStyle.fromName('chat_template').forTokenizer(tok));
  assert.ok(chat.multiTurn);
  assert.is(chat.prompt('Hi'), '<|user|>\nHi<|end|>\n<|assistant|>\n');
  chat.reply('Hello!');
  assert.is(chat.prompt('2+2?'), '<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n');
  chat.reply('4');
  assert.equal(chat.messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
  assert.equal(chat.stopTokens(tok), [[2], [3]]);

  const llama3 = new Conversation(PromptStyle.fromName('llama3'), { sysPrompt: 'Be brief.' });
  llama3.prompt('a');
  llama3.reply('b');
  assert.is(llama3.prompt('c'), PromptStyle.fromName('llama3').applyMessages([
    { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }]));

  const alpaca = new Conversation(PromptStyle.fromName('alpaca'));
  assert.not.ok(alpaca.multiTurn);
  alpaca.prompt('first');
  alpaca.reply('x');
  assert.is(alpaca.prompt('second'), PromptStyle.fromName('alpaca').apply('second'));
});

test.run();
