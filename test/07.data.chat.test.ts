// Chat rows in instruction data: OpenAI `messages` and ShareGPT `conversations`, rendered through a prompt style or
// the model's chat template, with exact label masks (the loss on assistant turns only under mask_prompt).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDataModule, PromptStyle, Tokenizer } from '../ts/index.js';
import { encodeChatSample } from '../ts/data/chat_data.js';
import { encodeSample } from '../ts/data/sft.js';
import { assertCode } from './helpers/assert.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());
const FIXTURES = join(import.meta.dirname, 'fixtures');
const LLAMA3_DIR = join(FIXTURES, 'tokenizers', 'llama3');
const TEMPLATE = JSON.parse(readFileSync(join(FIXTURES, 'chat_templates', 'llama3.json'), 'utf8'));

/** The Llama 3 tokenizer fixture, with Meta-Llama-3-8B-Instruct's chat template in its tokenizer_config.json. */
function llama3Tokenizer(): Tokenizer {
  const json = JSON.parse(readFileSync(join(LLAMA3_DIR, 'tokenizer.json'), 'utf8'));
  const config = { ...JSON.parse(readFileSync(join(LLAMA3_DIR, 'tokenizer_config.json'), 'utf8')), chat_template: TEMPLATE.chat_template };
  return new Tokenizer(json, { tokenizerConfig: config });
}

const CONVERSATION = [
  { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' },
  { role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Ciao' },
];
const IGNORE = -100;

/**
 * The expectation, derived from whole-text encodings rather than from the pieces: ids = encode(the whole rendering);
 * a token is learned when it lies between encode(text before a learned piece) and encode(text through it).
 */
function expected(tok: Tokenizer, pieces: [string, boolean][], maskPrompt: boolean) {
  // litgpt's encode drops a trailing EOS unless eos=True; the rendered <|eot_id|> (this tokenizer's EOS) is kept.
  const enc = (text: string) => tok.encode(text, { eos: text.endsWith('<|eot_id|>') });
  const ids = Array.from(enc(pieces.map((p) => p[0]).join('')));
  const learned = new Array<boolean>(ids.length).fill(false);
  let text = '';
  for (const [piece, learn] of pieces) {
    const start = text ? enc(text).length : 0;
    text += piece;
    const end = enc(text).length;
    if (learn) learned.fill(true, start, end);
  }
  return { ids, labels: ids.map((id, t) => (learned[t] || !maskPrompt ? id : IGNORE)) };
}

test('llama3 style (litgpt\'s multi-turn form): the loss is on each assistant turn and its <|eot_id|> only, under mask_prompt', () => {
  const tok = llama3Tokenizer();
  const pieces: [string, boolean][] = [
    ['<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
      '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n', false],
    ['Hello<|eot_id|>', true],
    ['<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n', false],
    ['Ciao<|eot_id|>', true],
  ];
  for (const maskPrompt of [true, false]) {
    const s = encodeChatSample(tok, CONVERSATION, { promptStyle: PromptStyle.fromName('llama3'), maxSeqLength: -1, maskPrompt, ignoreIndex: IGNORE });
    const want = expected(tok, pieces, maskPrompt);
    assert.equal(Array.from(s.inputIds), want.ids);
    assert.equal(Array.from(s.labels), want.labels);
  }
  const s = encodeChatSample(tok, CONVERSATION, { promptStyle: PromptStyle.fromName('llama3'), maxSeqLength: -1, maskPrompt: true, ignoreIndex: IGNORE });
  assert.is(tok.decode(Array.from(s.labels).filter((id) => id !== IGNORE), { skipSpecialTokens: false } as never), 'Hello<|eot_id|>Ciao<|eot_id|>');
  const cut = encodeChatSample(tok, CONVERSATION, { promptStyle: PromptStyle.fromName('llama3'), maxSeqLength: 10, maskPrompt: true, ignoreIndex: IGNORE });
  assert.equal(Array.from(cut.inputIds), Array.from(s.inputIds.slice(0, 10)));
});

test('chat_template: the model\'s template cut at each assistant turn, exact masks; a JSON file of ShareGPT rows trains through it', async () => {
  const tok = llama3Tokenizer();
  const style = PromptStyle.fromName('chat_template').forTokenizer(tok);
  const pieces: [string, boolean][] = [
    ['<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n', false],
    ['Hello<|eot_id|>', true],
    ['<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n', false],
    ['Ciao<|eot_id|>', true],
  ];
  const s = encodeChatSample(tok, CONVERSATION, { promptStyle: style, maxSeqLength: -1, maskPrompt: true, ignoreIndex: IGNORE });
  const want = expected(tok, pieces, true);
  assert.equal(Array.from(s.inputIds), want.ids);
  assert.equal(Array.from(s.labels), want.labels);

  // The same conversation as a ShareGPT row and as an OpenAI row, through --data Chat (chat_template by default).
  const dir = temp.make('chat-data');
  mkdirSync(join(dir, 'data'));
  const sharegpt = { conversations: CONVERSATION.map((m) => ({ from: m.role === 'user' ? 'human' : 'gpt', value: m.content })) };
  writeFileSync(join(dir, 'data', 'train.json'), JSON.stringify([sharegpt]));
  writeFileSync(join(dir, 'data', 'val.jsonl'), `${JSON.stringify({ messages: CONVERSATION })}\n`);
  const data = createDataModule('Chat', { json_path: join(dir, 'data'), mask_prompt: true });
  await data.setup(tok);
  for (const batch of [[...data.trainBatches(0, 1)][0]!, [...data.valBatches(1)][0]!]) {
    assert.equal(Array.from(batch.inputIds), want.ids);
    assert.equal(Array.from(batch.labels), want.labels);
  }
  assert.equal(data.toHyperparameters().class_path, 'litlora.data.Chat');
  assert.is(data.toHyperparameters().init_args.prompt_style, 'chat_template');
});

test('a single-turn style takes a one-exchange chat row as the instruction sample (system → sys_prompt); longer rows are refused', async () => {
  const tok = llama3Tokenizer();
  const options = { promptStyle: PromptStyle.fromName('alpaca'), maxSeqLength: -1, maskPrompt: true, ignoreIndex: IGNORE };
  const chat = encodeChatSample(tok, [{ role: 'system', content: 'SYS ' }, { role: 'user', content: 'Reverse: abc' }, { role: 'assistant', content: 'cba' }], options);
  const plain = encodeSample(tok, { instruction: 'Reverse: abc', output: 'cba', sys_prompt: 'SYS ' }, options);
  assert.equal(Array.from(chat.inputIds), Array.from(plain.inputIds));
  assert.equal(Array.from(chat.labels), Array.from(plain.labels));
  assert.ok(tok.decode(chat.inputIds).startsWith('SYS ### Instruction:'));
  await assertCode(() => encodeChatSample(tok, CONVERSATION, options, 'f.json: row 3'), 'ERR_DATA',
    /f\.json: row 3: the Alpaca prompt style renders one exchange .* this conversation has 4 turns\. Use a multi-turn style/);
});

test('malformed chat rows are ERR_DATA naming the file, the row and the turn', async () => {
  const tok = llama3Tokenizer();
  const dir = temp.make('chat-bad');
  const cases: [unknown, RegExp][] = [
    [{ messages: [{ role: 'user', content: 'x' }, { role: 'robot', content: 'y' }] }, /row 1: messages\[1\] has role 'robot'/],
    [{ messages: [{ role: 'user', content: 'x' }] }, /row 1: the conversation has no assistant turn/],
    [{ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }, { role: 'user', content: 'z' }] }, /ends with a user turn/],
    [{ conversations: [{ from: 'alien', value: 'x' }] }, /row 1: conversations\[0\] is from 'alien'/],
    [{ conversations: 'hi' }, /row 1: 'conversations' must be a list of \{from, value\}/],
    [{ messages: [{ role: 'user' }] }, /row 1: messages\[0\] must be \{role: string, content: string\}/],
  ];
  for (const [row, message] of cases) {
    writeFileSync(join(dir, 'd.json'), JSON.stringify([row, row]));
    const data = createDataModule('JSON', { json_path: join(dir, 'd.json'), val_split_fraction: 0.5, prompt_style: 'llama3' });
    await assertCode(() => data.setup(tok), 'ERR_DATA', message);
  }
});

test.run();
