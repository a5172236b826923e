// A Chart.js chart (the vendored UMD build, window.Chart) as a component: created once,
// then updated in place when its data changes, destroyed when it leaves the page.
import { html, useEffect, useRef } from "./preact-htm.module.js";

const GREEN = "#2f6b3a", RED = "#b3261e", BLUE = "#1f6fb2", AMBER = "#a86b00";
export const COLORS = { GREEN, RED, BLUE, AMBER };

export function ChartBox({ id, title, note, config, empty }) {
  const canvas = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    if (empty || !canvas.current || !window.Chart) return undefined;
    if (!chart.current) {
      chart.current = new window.Chart(canvas.current, {
        ...config,
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          scales: { x: { ticks: { precision: 0 } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
          ...config.options,
        },
      });
    } else {
      chart.current.data = config.data;
      chart.current.update("none");
    }
    return undefined;
  }, [JSON.stringify(config.data), empty]);
  useEffect(() => () => {
    if (chart.current) chart.current.destroy();
    chart.current = null;
  }, [empty]);
  return html`<figure class="chart card" id=${id}>
    <figcaption>${title}${note && html`<span class="muted"> · ${note}</span>`}</figcaption>
    ${empty ? html`<p class="muted empty-chart">${empty}</p>`
      : html`<div class="chart-area"><canvas ref=${canvas} role="img" aria-label=${title}></canvas></div>`}
  </figure>`;
}

export function binLabels(edges, digits = 2) {
  const out = [];
  for (let i = 0; i + 1 < edges.length; i++) out.push(`${edges[i].toFixed(digits)}–${edges[i + 1].toFixed(digits)}`);
  return out;
}

export function timeLabel(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
