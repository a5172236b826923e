import { html } from "./preact-htm.module.js";
export function DatasetsPage() {
  return html`<main class="datasets-page"><p class="muted">Datasets.</p></main>`;
}
