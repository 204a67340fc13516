// Chat messages → the prompt text the model continues. Until the model-families work brings the tokenizer's
// chat_template (a ChatRenderer over @huggingface/jinja), a conversation is rendered with the folder's litgpt
// prompt style, which knows one instruction: each user turn goes through style.apply (with the system
// messages as its sys_prompt), each assistant turn follows it verbatim. A conversation of one user message is
// exactly the text `litlora generate --prompt` makes of that message, so both give the same reply.
// The hook: ServeOptions.renderChat replaces promptStyleRenderer for the whole server.
import type { PromptStyle } from '../data/prompts.js';

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Renders a validated conversation (it ends with a user message) for the model whose prompt style is `style`. */
export type ChatRenderer = (messages: readonly ChatMessage[], style: PromptStyle) => string;

export const promptStyleRenderer: ChatRenderer = (messages, style) => {
  const system = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => m.content).join('\n');
  let text = '';
  for (const m of messages) {
    if (m.role === 'user') text += style.apply(m.content, system ? { sysPrompt: system } : {});
    else if (m.role === 'assistant') text += `${m.content}\n`;
  }
  return text;
};
