// Hand-drawn SVG charts: no chart library, and each chart re-renders only itself.
import { memo } from "react";
import { formatClock } from "../lib/time";

export interface Series {
  name: string;
  color: string;
  values: number[];
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number, unit: string): string {
  if (unit === "%") return `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(1)}k${unit}`;
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
}

export const LineChart = memo(function LineChart({
  title,
  times,
  series,
  unit = "",
  height = 160,
}: {
  title: string;
  times: number[];
  series: Series[];
  unit?: string;
  height?: number;
}) {
  const width = 480;
  const pad = { l: 48, r: 8, t: 8, b: 22 };
  const n = times.length;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const x = (i: number) => pad.l + (n <= 1 ? 0 : (i * (width - pad.l - pad.r)) / (n - 1));
  const y = (v: number) => pad.t + (1 - v / max) * (height - pad.t - pad.b);
  const last = series.map((s) => s.values[s.values.length - 1]);
  const summary = series.map((s, i) => `${s.name} ${last[i] === undefined ? "no data" : fmt(last[i], unit)}`).join(", ");
  return (
    <figure className="chart">
      <figcaption>
        <span className="chart-title">{title}</span>
        <span className="legend">
          {series.map((s, i) => (
            <span key={s.name}>
              <i style={{ background: s.color }} aria-hidden="true" />
              {s.name} <b>{last[i] === undefined ? "—" : fmt(last[i], unit)}</b>
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${title}: ${summary}`} preserveAspectRatio="none">
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={pad.l} x2={width - pad.r} y1={y(max * f)} y2={y(max * f)} className="grid" />
            <text x={pad.l - 4} y={y(max * f) + 4} textAnchor="end" className="axis">
              {fmt(max * f, unit)}
            </text>
          </g>
        ))}
        {n > 0 && (
          <>
            <text x={pad.l} y={height - 4} className="axis">
              {formatClock(times[0])}
            </text>
            <text x={width - pad.r} y={height - 4} textAnchor="end" className="axis">
              {formatClock(times[n - 1])}
            </text>
          </>
        )}
        {series.map((s) => (
          <polyline
            key={s.name}
            fill="none"
            stroke={s.color}
            strokeWidth={2}
            points={s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}
          />
        ))}
      </svg>
    </figure>
  );
});

export const BarList = memo(function BarList({
  title,
  rows,
  empty = "No data yet.",
}: {
  title: string;
  rows: { label: string; value: number; className?: string }[];
  empty?: string;
}) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return (
    <figure className="chart barlist">
      <figcaption>
        <span className="chart-title">{title}</span>
      </figcaption>
      {rows.length === 0 ? (
        <p className="state empty">{empty}</p>
      ) : (
        <table>
          <tbody>
            {rows.map((r) => (
              <tr key={r.label}>
                <th scope="row" title={r.label}>
                  {r.label}
                </th>
                <td>
                  <span className={`bar ${r.className ?? ""}`} style={{ width: `${(100 * r.value) / max}%` }} aria-hidden="true" />
                </td>
                <td className="num">{r.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </figure>
  );
});
