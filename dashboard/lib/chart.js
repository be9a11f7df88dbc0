// A small time-series chart (uPlot, served from the package). `series` is [{ label, values, stroke }]
// over `times` (unix seconds); `marks` are vertical lines at instants (e.g. alert firings), `threshold` a level.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

export function Chart({ title, times, series, height = 160, threshold, marks = [] }) {
  const box = useRef();
  useEffect(() => {
    if (!box.current) return undefined;
    const width = Math.max(240, box.current.clientWidth);
    const lines = (u) => {
      const { ctx } = u;
      ctx.save();
      ctx.lineWidth = 2;
      if (threshold !== undefined && threshold !== null) {
        const y = u.valToPos(threshold, 'y', true);
        ctx.strokeStyle = '#a50e0e';
        ctx.setLineDash([6, 4]);
        ctx.beginPath();
        ctx.moveTo(u.bbox.left, y);
        ctx.lineTo(u.bbox.left + u.bbox.width, y);
        ctx.stroke();
      }
      ctx.strokeStyle = '#e37400';
      ctx.setLineDash([]);
      for (const at of marks) {
        const x = u.valToPos(at, 'x', true);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
      }
      ctx.restore();
    };
    const plot = new uPlot(
      {
        width,
        height,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke ?? '#0b57d0', width: 2 }))],
        // One point (or none) would stretch the time axis over years: keep a minute either side.
        scales: { x: { time: true, range: (_u, min, max) => (min === max || min === null ? [(min ?? Date.now() / 1000) - 60, (max ?? Date.now() / 1000) + 60] : [min, max]) } },
        axes: [{}, { size: 50 }],
        legend: { show: series.length > 1 },
        hooks: { draw: [lines] },
      },
      [times, ...series.map((s) => s.values)],
      box.current,
    );
    const resize = () => plot.setSize({ width: Math.max(240, box.current.clientWidth), height });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      plot.destroy();
    };
  }, [JSON.stringify([times, series, threshold, marks])]);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}: chart over time`}></div>
  </figure>`;
}
