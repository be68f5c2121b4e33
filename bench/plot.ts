/**
 * Line charts as standalone SVG, written by hand (no network, no dependencies): where a
 * curve says more than a number (throughput against `--count`, RSS across a long run,
 * the latency distribution).
 *
 * @module
 */

/** One line of a chart. */
export interface Series {
  name: string;
  points: [number, number][];
  /** Dashed for baselines. */
  dashed?: boolean;
}

/** What {@link lineChart} draws. */
export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Ticks for the x axis; default: nice numbers over the data. */
  xTicks?: number[];
  /** Start the y axis at zero. @default true */
  yFromZero?: boolean;
  /** Draw a marker at every point. @default true */
  markers?: boolean;
  width?: number;
  height?: number;
}

const COLORS = [
  "#d62728",
  "#1f77b4",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#8c564b",
  "#17becf",
  "#7f7f7f",
  "#bcbd22",
  "#e377c2",
];

/** Renders `chart` as an SVG document. */
export function lineChart(chart: Chart): string {
  const width = chart.width ?? 720;
  const height = chart.height ?? 420;
  const m = { left: 70, right: 220, top: 40, bottom: 50 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const xs = chart.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = chart.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const xTicks = chart.xTicks ?? niceTicks(Math.min(...xs), Math.max(...xs));
  const yTicks = niceTicks(chart.yFromZero === false ? Math.min(...ys) : 0, Math.max(...ys));
  const [x0, x1] = [xTicks[0], xTicks.at(-1)!];
  const [y0, y1] = [yTicks[0], yTicks.at(-1)!];
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0 || 1)) * w;
  const sy = (y: number) => m.top + h - ((y - y0) / (y1 - y0 || 1)) * h;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${m.left}" y="22" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
  );
  for (const t of yTicks) {
    out.push(
      `<line x1="${m.left}" x2="${m.left + w}" y1="${sy(t)}" y2="${sy(t)}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${sy(t) + 4}" text-anchor="end">${label(t)}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${sx(t)}" x2="${sx(t)}" y1="${m.top}" y2="${m.top + h}" stroke="#eee"/>`,
      `<text x="${sx(t)}" y="${m.top + h + 18}" text-anchor="middle">${label(t)}</text>`,
    );
  }
  out.push(
    `<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#333"/>`,
    `<text x="${m.left + w / 2}" y="${height - 10}" text-anchor="middle">${
      esc(chart.xLabel)
    }</text>`,
    `<text x="16" y="${m.top + h / 2}" text-anchor="middle" transform="rotate(-90 16 ${
      m.top + h / 2
    })">${esc(chart.yLabel)}</text>`,
  );
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="${
        s.dashed ? 1.5 : 2.5
      }"${dash} points="${
        pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")
      }"/>`,
    );
    if (chart.markers ?? true) {
      for (const p of pts) {
        out.push(
          `<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="3" fill="${color}"/>`,
        );
      }
    }
    const ly = m.top + 10 + i * 20;
    out.push(
      `<line x1="${m.left + w + 12}" x2="${
        m.left + w + 36
      }" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<text x="${m.left + w + 42}" y="${ly + 4}">${esc(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** About five round ticks covering [lo, hi]. */
export function niceTicks(lo: number, hi: number): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.floor(lo / step) * step; t < hi + step * 0.999; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

function label(x: number): string {
  return Math.abs(x) >= 1000 ? x.toLocaleString("en-US") : String(x);
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
