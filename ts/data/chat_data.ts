// Chat rows in instruction data: OpenAI-style `{"messages": [{"role", "content"}]}` and ShareGPT
// `{"conversations": [{"from", "value"}]}`, rendered through the prompt style, with the loss on the assistant
// turns only when mask_prompt is set.
//
// A style with a multi-turn form (chat_template, Llama3, R1Base) renders the whole conversation. The text is cut
// where each assistant turn starts (the rendering of the turns before it, with the assistant header) and ends
// (the rendering up to and including it, without a header for a next turn); each piece is encoded on its own, as
// litgpt's SFTDataset encodes prompt and response apart, and the pieces are joined. A template whose renderings
// are not such prefixes of each other cannot be cut this way and is refused (ERR_DATA).
//
// A single-turn style (alpaca, …) takes a row with one exchange — optional system turn, user, assistant — as the
// instruction sample {instruction: user, output: assistant, sys_prompt: system}; longer rows need a multi-turn style.
import { fail } from '../errors.js';
import type { ChatMessage } from './chat_template.js';
import { encodeSample, type EncodedSample, type InstructionSample, type SftOptions } from './sft.js';
import type { Tokenizer } from './tokenizer.js';

const SHAREGPT_ROLES: Record<string, string> = {
  human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', model: 'assistant', chatgpt: 'assistant', system: 'system',
};

/**
 * The messages of a chat row, or null for a row that is not one (no `messages` / `conversations` field).
 * ERR_DATA names the row and the turn for a malformed one.
 */
export function chatRowMessages(row: Record<string, unknown>, where: string): ChatMessage[] | null {
  let messages: ChatMessage[];
  if ('messages' in row) {
    const list = row.messages;
    if (!Array.isArray(list)) fail('ERR_DATA', `${where}: 'messages' must be a list of {role, content}, got ${JSON.stringify(list)?.slice(0, 60)}`);
    messages = list.map((m, i) => {
      if (!m || typeof m !== 'object' || typeof m.role !== 'string' || typeof m.content !== 'string') {
        fail('ERR_DATA', `${where}: messages[${i}] must be {role: string, content: string}, got ${JSON.stringify(m)?.slice(0, 80)}`);
      }
      if (!['system', 'user', 'assistant'].includes(m.role)) {
        fail('ERR_DATA', `${where}: messages[${i}] has role '${m.role}'; expected system, user or assistant`);
      }
      return { role: m.role, content: m.content };
    });
  } else if ('conversations' in row) {
    const list = row.conversations;
    if (!Array.isArray(list)) fail('ERR_DATA', `${where}: 'conversations' must be a list of {from, value}, got ${JSON.stringify(list)?.slice(0, 60)}`);
    messages = list.map((m, i) => {
      if (!m || typeof m !== 'object' || typeof m.from !== 'string' || typeof m.value !== 'string') {
        fail('ERR_DATA', `${where}: conversations[${i}] must be {from: string, value: string}, got ${JSON.stringify(m)?.slice(0, 80)}`);
      }
      const role = SHAREGPT_ROLES[m.from];
      if (!role) fail('ERR_DATA', `${where}: conversations[${i}] is from '${m.from}'; expected one of ${Object.keys(SHAREGPT_ROLES).join(', ')}`);
      return { role, content: m.value };
    });
  } else {
    return null;
  }
  if (!messages.some((m) => m.role === 'assistant')) fail('ERR_DATA', `${where}: the conversation has no assistant turn to learn`);
  if (messages[messages.length - 1]!.role !== 'assistant') {
    fail('ERR_DATA', `${where}: the conversation ends with a ${messages[messages.length - 1]!.role} turn; expected it to end with the assistant's`);
  }
  return messages;
}

/** A chat row encoded for training: ids, and labels with everything but the assistant turns masked when maskPrompt. */
export function encodeChatSample(tokenizer: Tokenizer, messages: readonly ChatMessage[], options: SftOptions, where = 'chat sample'): EncodedSample {
  const style = options.promptStyle;
  if (!style.multiTurn) {
    const system = messages[0]!.role === 'system' ? messages[0]! : null;
    const turns = system ? messages.slice(1) : messages;
    if (turns.length !== 2 || turns[0]!.role !== 'user' || turns[1]!.role !== 'assistant') {
      fail('ERR_DATA', `${where}: the ${style.className} prompt style renders one exchange (system?, user, assistant); this conversation ` +
        `has ${turns.length} turns. Use a multi-turn style: --data.prompt_style chat_template (the model's template) or llama3`);
    }
    const sample: InstructionSample = { instruction: turns[0]!.content, output: turns[1]!.content };
    if (system) sample.sys_prompt = system.content;
    return encodeSample(tokenizer, sample, options);
  }
  // Cut points: [prompt piece, assistant piece, prompt piece, assistant piece, …].
  const pieces: { text: string; learn: boolean }[] = [];
  let done = '';
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = style.applyMessages(messages.slice(0, i), {}, { addGenerationPrompt: true });
    const through = style.applyMessages(messages.slice(0, i + 1), {}, { addGenerationPrompt: false });
    if (!before.startsWith(done) || !through.startsWith(before)) {
      fail('ERR_DATA', `${where}: the ${style.className} style's renderings of this conversation are not prefixes of each other at ` +
        `turn ${i}, so the assistant turns cannot be told apart for the loss; use another prompt style`);
    }
    pieces.push({ text: before.slice(done.length), learn: false }, { text: through.slice(before.length), learn: true });
    done = through;
  });
  const L = options.maxSeqLength;
  const ids: number[] = [];
  const learn: boolean[] = [];
  let promptLength = -1;
  // The first piece is encoded as litgpt encodes a prompt (BOS as the tokenizer decides), the others with bos=False.
  // litgpt's encode drops an EOS the processor adds unless eos=True: a piece that spells the EOS token out (a
  // template's end of turn) keeps it.
  const eosText = tokenizer.eosId === null ? null : tokenizer.idToToken(tokenizer.eosId) ?? null;
  pieces.forEach((piece, k) => {
    const bos = k === 0 ? undefined : false;
    const eos = eosText !== null && piece.text.endsWith(eosText);
    const enc = tokenizer.encode(piece.text, { bos, eos });
    for (const id of enc) { ids.push(id); learn.push(piece.learn); }
    if (k === 0) promptLength = enc.length;
  });
  const length = L > 0 ? Math.min(L, ids.length) : ids.length;
  const inputIds = Int32Array.from(ids.slice(0, length));
  const labels = inputIds.slice();
  if (options.maskPrompt) for (let t = 0; t < length; t++) if (!learn[t]) labels[t] = options.ignoreIndex;
  return { inputIds, labels, promptLength };
}
