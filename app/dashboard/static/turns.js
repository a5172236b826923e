// A multi-turn conversation's later turns (the API's `turns`: alternating user and assistant
// messages after the first exchange), shown under the first answer, one box per message.
import { html } from "./preact-htm.module.js";

export function Turns({ turns }) {
  if (!turns || turns.length === 0) return null;
  return html`<ol class="turns" start="2">
    ${turns.map((t, i) => html`<li key=${i} class=${"turn " + t.role} data-role=${t.role}>
      <span class="muted small">${t.role}</span><pre class="text-box">${t.content}</pre></li>`)}
  </ol>`;
}
