// Chat messages → the prompt text the model continues, with the folder's prompt style. A style with a multi-turn
// form (the model's own chat_template, litgpt's Llama3 and R1Base: PromptStyle.multiTurn) renders the whole
// conversation (`developer` turns as `system`). Any other litgpt style knows one instruction: each user turn goes
// through style.apply (with the system messages as its sys_prompt), each assistant turn follows it verbatim. A
// conversation of one user message is exactly the text `litlora generate --prompt` makes of that message, so both
// give the same reply. The hook: ServeOptions.renderChat replaces promptStyleRenderer for the whole server.
import type { ChatMessage } from '../data/chat_template.js';
import type { PromptStyle } from '../data/prompts.js';

/** The roles a chat request may use (OpenAI's; `developer` is its newer name for `system`). */
export type ChatRole = 'system' | 'developer' | 'user' | 'assistant';

/** A chat request's message: a ChatMessage (data/chat_template.ts) with one of those roles. */
export interface ServeChatMessage extends ChatMessage {
  role: ChatRole;
}

/** Renders a validated conversation (it ends with a user message) for the model whose prompt style is `style`. */
export type ChatRenderer = (messages: readonly ServeChatMessage[], style: PromptStyle) => string;

export const promptStyleRenderer: ChatRenderer = (messages, style) => {
  if (style.multiTurn) return style.applyMessages(messages.map((m) => (m.role === 'developer' ? { role: 'system', content: m.content } : m)));
  const system = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => m.content).join('\n');
  let text = '';
  for (const m of messages) {
    if (m.role === 'user') text += style.apply(m.content, system ? { sysPrompt: system } : {});
    else if (m.role === 'assistant') text += `${m.content}\n`;
  }
  return text;
};
