// Overview: live charts from /ws/metrics (one tick a second; each chart subscribes to the tick
// store and re-renders alone), the last hour from /api/metrics, and open alerts by severity.
import { useMemo, useState } from "react";
import { BarList, LineChart } from "../components/Charts";
import { ApiSelect, useApis } from "../components/ApiSelect";
import { ErrorBox, Loading, Page } from "../components/States";
import { useFetch } from "../lib/useFetch";
import { query } from "../lib/api";
import { LiveStore, useLive } from "../lib/store";
import { streamStateText, useStream } from "../lib/ws";
import { SEVERITIES, type AlertSummary, type MetricsTick } from "../lib/types";

const WINDOW = 120; // seconds of live history
// The REST summaries beside the live charts are fetched again on these periods, so "the last hour"
// and the alert counts never contradict the live charts for long.
export const LAST_HOUR_REFRESH_MS = 60_000;
export const ALERT_COUNTS_REFRESH_MS = 15_000;

export function pushTick(prev: MetricsTick[], t: MetricsTick, max = WINDOW): MetricsTick[] {
  const next = prev.length >= max ? prev.slice(prev.length - max + 1) : prev.slice();
  next.push(t);
  return next;
}

// Sums the per-second top lists over the live window.
export function sumTop<K extends string>(ticks: MetricsTick[], pick: (t: MetricsTick) => ({ count: number } & Record<K, string | number>)[], key: K, n = 8) {
  const m = new Map<string, number>();
  for (const t of ticks) for (const r of pick(t) ?? []) m.set(String(r[key]), (m.get(String(r[key])) ?? 0) + r.count);
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([label, value]) => ({ label, value }));
}

function LiveCharts({ store }: { store: LiveStore<MetricsTick[]> }) {
  const ticks = useLive(store);
  const times = ticks.map((t) => t.ts);
  return (
    <div className="grid charts">
      <LineChart title="Requests per second" times={times} series={[{ name: "req/s", color: "#2457c5", values: ticks.map((t) => t.requests) }]} />
      <LineChart title="Error rate" unit="%" times={times} series={[{ name: "errors", color: "#c0392b", values: ticks.map((t) => t.error_rate) }]} />
      <LineChart
        title="Latency percentiles"
        unit=" ms"
        times={times}
        series={[
          { name: "p50", color: "#2e7d32", values: ticks.map((t) => t.latency_ms?.p50 ?? 0) },
          { name: "p95", color: "#b26a00", values: ticks.map((t) => t.latency_ms?.p95 ?? 0) },
          { name: "p99", color: "#8e24aa", values: ticks.map((t) => t.latency_ms?.p99 ?? 0) },
        ]}
      />
    </div>
  );
}

function LiveTops({ store }: { store: LiveStore<MetricsTick[]> }) {
  const ticks = useLive(store);
  const ips = useMemo(() => sumTop(ticks, (t) => t.top_ips, "ip"), [ticks]);
  const eps = useMemo(() => sumTop(ticks, (t) => t.top_endpoints, "endpoint"), [ticks]);
  const last = ticks[ticks.length - 1];
  const sev = SEVERITIES.slice()
    .reverse()
    .map((s) => ({ label: s, value: last?.alerts_open_by_severity?.[s] ?? 0, className: `sev-bg-${s}` }));
  return (
    <div className="grid tops">
      <BarList title="Top client IPs (last 2 min)" rows={ips} />
      <BarList title="Top endpoints (last 2 min)" rows={eps} />
      <BarList title="Open alerts by severity" rows={sev} />
    </div>
  );
}

interface MetricsAnswer {
  from: number;
  to: number;
  bucket: number;
  apis: {
    api_id: number;
    name: string;
    totals: { requests: number; errors: number; error_rate: number; p50: number; p95: number; p99: number };
    buckets: { ts: number; requests: number; errors: number; error_rate: number; p50: number; p95: number; p99: number }[];
    top_ips: { ip: string; count: number }[];
    top_endpoints: { endpoint: string; count: number }[];
  }[];
}

function LastHour({ apiId }: { apiId: string }) {
  const { data, error, loading, reload } = useFetch<MetricsAnswer>(
    "/api/metrics" + query({ api_id: apiId, bucket: 60 }),
    LAST_HOUR_REFRESH_MS,
  );
  const agg = useMemo(() => {
    if (!data) return null;
    const by = new Map<number, { requests: number; errors: number; p95: number }>();
    let requests = 0,
      errors = 0;
    const ips = new Map<string, number>();
    const eps = new Map<string, number>();
    for (const a of data.apis) {
      requests += a.totals.requests;
      errors += a.totals.errors;
      for (const b of a.buckets) {
        const v = by.get(b.ts) ?? { requests: 0, errors: 0, p95: 0 };
        v.requests += b.requests;
        v.errors += b.errors;
        v.p95 = Math.max(v.p95, b.p95);
        by.set(b.ts, v);
      }
      for (const r of a.top_ips) ips.set(r.ip, (ips.get(r.ip) ?? 0) + r.count);
      for (const r of a.top_endpoints) eps.set(r.endpoint, (eps.get(r.endpoint) ?? 0) + r.count);
    }
    const ts = [...by.keys()].sort((x, y) => x - y);
    const top = (m: Map<string, number>) =>
      [...m.entries()]
        .sort((x, y) => y[1] - x[1])
        .slice(0, 8)
        .map(([label, value]) => ({ label, value }));
    return { ts, by, requests, errors, ips: top(ips), eps: top(eps) };
  }, [data]);
  if (loading && !data) return <Loading what="Loading the last hour" />;
  if (error) return <ErrorBox error={error} what="Metrics" onRetry={reload} />;
  if (!agg) return null;
  return (
    <>
      <p className="kpis">
        <span>
          <b data-testid="hour-requests">{agg.requests}</b> requests
        </span>
        <span>
          <b>{agg.errors}</b> errors
        </span>
        <span>
          <b>{agg.requests ? ((100 * agg.errors) / agg.requests).toFixed(1) : "0.0"}%</b> error rate
        </span>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </p>
      {agg.requests === 0 ? (
        <p className="state empty">No requests in the last hour. Create an API and send events to see them here.</p>
      ) : (
        <div className="grid charts">
          <LineChart title="Requests per minute" times={agg.ts} series={[{ name: "req/min", color: "#2457c5", values: agg.ts.map((t) => agg.by.get(t)!.requests) }]} />
          <LineChart title="Errors per minute" times={agg.ts} series={[{ name: "errors", color: "#c0392b", values: agg.ts.map((t) => agg.by.get(t)!.errors) }]} />
          <LineChart title="Latency p95 (highest API)" unit=" ms" times={agg.ts} series={[{ name: "p95", color: "#b26a00", values: agg.ts.map((t) => agg.by.get(t)!.p95) }]} />
          <BarList title="Top client IPs (last hour)" rows={agg.ips} />
          <BarList title="Top endpoints (last hour)" rows={agg.eps} />
        </div>
      )}
    </>
  );
}

function AlertCounts({ apiId }: { apiId: string }) {
  const { data, error } = useFetch<AlertSummary>("/api/alerts/summary" + query({ api_id: apiId }), ALERT_COUNTS_REFRESH_MS);
  if (error) return <ErrorBox error={error} what="The alert summary" />;
  if (!data) return <Loading what="Loading alerts" />;
  return (
    <p className="kpis">
      <span>
        <b>{data.open}</b> open alerts
      </span>
      <span>
        <b>{data.acknowledged}</b> acknowledged
      </span>
      {SEVERITIES.slice()
        .reverse()
        .map((s) => (
          <span key={s} className={`sev sev-${s}`}>
            {s}: {data.open_by_severity?.[s] ?? 0}
          </span>
        ))}
    </p>
  );
}

export function OverviewPage() {
  const { apis } = useApis();
  const [apiId, setApiId] = useState("");
  const store = useMemo(() => new LiveStore<MetricsTick[]>([]), []);
  const state = useStream("/ws/metrics", { api_id: apiId || undefined }, (m) => {
    const t = m as MetricsTick;
    if (t && t.type === "metrics") store.update((prev) => pushTick(prev, t));
  });
  return (
    <Page title="Overview" actions={<ApiSelect id="overview-api" value={apiId} onChange={(v) => { store.set([]); setApiId(v); }} apis={apis} />}>
      <h2>Alerts</h2>
      <AlertCounts apiId={apiId} />
      <h2>
        Live <span className={`pill stream-${state}`} role="status" data-testid="metrics-state">{streamStateText(state, "metrics stream")}</span>
      </h2>
      {state !== "unavailable" && (
        <>
          <LiveCharts store={store} />
          <LiveTops store={store} />
        </>
      )}
      <h2>Last hour</h2>
      <LastHour apiId={apiId} />
    </Page>
  );
}
