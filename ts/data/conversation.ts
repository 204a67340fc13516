// A chat's turns and the prompt for the model's next reply. With a style that has a multi-turn form (litgpt's
// Llama3 and R1Base, and chat_template) the prompt is the whole conversation so far, so the model sees the earlier
// turns; with any other style each prompt is the single user turn, as litgpt's chat does.
import type { ChatMessage } from './chat_template.js';
import type { PromptStyle, StopTokenSource } from './prompts.js';

export class Conversation {
  readonly #messages: ChatMessage[] = [];
  #pending: string | null = null;

  constructor(readonly style: PromptStyle, readonly options: { sysPrompt?: string } = {}) {
    if (options.sysPrompt) this.#messages.push({ role: 'system', content: options.sysPrompt });
  }

  /** Whether earlier turns are part of each prompt. */
  get multiTurn(): boolean {
    return this.style.multiTurn;
  }

  /** The turns so far (a system turn first when sysPrompt was given). */
  get messages(): readonly ChatMessage[] {
    return this.#messages;
  }

  /** The prompt text for the model's reply to `userText`; the turn is kept once `reply` records the answer. */
  prompt(userText: string): string {
    this.#pending = userText;
    if (!this.multiTurn) return this.style.apply(userText, this.options.sysPrompt ? { sysPrompt: this.options.sysPrompt } : {});
    return this.style.applyMessages([...this.#messages, { role: 'user', content: userText }]);
  }

  /** Records the model's reply to the last prompt (a cancelled reply is recorded as far as it went). */
  reply(text: string): void {
    if (this.#pending === null) return;
    this.#messages.push({ role: 'user', content: this.#pending }, { role: 'assistant', content: text });
    this.#pending = null;
  }

  /** The style's stop sequences (end of turn as well as EOS). */
  stopTokens(tokenizer: StopTokenSource): number[][] {
    return this.style.stopTokens(tokenizer);
  }
}
