// Live activity: /ws/stream events and findings as they happen, with filters and pause. Rows are
// kept in a bounded store; only the table re-renders on a message.
import { useMemo, useRef, useState } from "react";
import { Link } from "react-router-dom";
import { ApiSelect, apiName, useApis } from "../components/ApiSelect";
import { Page } from "../components/States";
import { SeverityBadge } from "../components/Severity";
import { LiveStore, useLive } from "../lib/store";
import { formatClock } from "../lib/time";
import { streamStateText, useStream } from "../lib/ws";
import type { Api, Finding, StreamEvent } from "../lib/types";

export type Row = { kind: "event"; key: string; event: StreamEvent } | { kind: "finding"; key: string; finding: Finding };

const MAX_ROWS = 300;

export interface LiveFilter {
  text: string;
  method: string;
  status: string; // "", "2", "3", "4", "5"
  findingsOnly: boolean;
}

export function rowMatches(r: Row, f: LiveFilter): boolean {
  if (f.findingsOnly && r.kind !== "finding") return false;
  const text = f.text.trim().toLowerCase();
  if (r.kind === "event") {
    const e = r.event;
    if (f.method && e.method !== f.method) return false;
    if (f.status && String(e.status_code)[0] !== f.status) return false;
    if (text && !`${e.path} ${e.client_ip} ${e.endpoint_template} ${e.user_agent ?? ""}`.toLowerCase().includes(text)) return false;
  } else {
    const x = r.finding;
    if (f.method && x.method !== f.method) return false;
    if (f.status) return false;
    if (text && !`${x.endpoint_template} ${x.client_ip} ${x.detector} ${x.message}`.toLowerCase().includes(text)) return false;
  }
  return true;
}

function Rows({ store, filter, apis }: { store: LiveStore<Row[]>; filter: LiveFilter; apis: Api[] }) {
  const rows = useLive(store);
  const shown = useMemo(() => rows.filter((r) => rowMatches(r, filter)), [rows, filter]);
  if (shown.length === 0)
    return <p className="state empty">{rows.length === 0 ? "Waiting for traffic… events appear here as they are ingested." : "No rows match the filters."}</p>;
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label="Live rows">
      <table className="data" data-testid="live-table">
        <caption className="sr-only">Live requests and findings, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">API</th>
            <th scope="col">Kind</th>
            <th scope="col">Method</th>
            <th scope="col">Path</th>
            <th scope="col">Status</th>
            <th scope="col">Latency</th>
            <th scope="col">Client IP</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) =>
            r.kind === "event" ? (
              <tr key={r.key}>
                <td>{formatClock(r.event.timestamp)}</td>
                <td>{apiName(apis, r.event.api_id)}</td>
                <td>request</td>
                <td>{r.event.method}</td>
                <td className="mono">{r.event.path}</td>
                <td className={r.event.status_code >= 400 ? "bad" : ""}>{r.event.status_code}</td>
                <td className="num">{Math.round(r.event.latency_ms)} ms</td>
                <td className="mono">{r.event.client_ip}</td>
              </tr>
            ) : (
              <tr key={r.key} className="finding-row">
                <td>{formatClock(r.finding.timestamp)}</td>
                <td>{apiName(apis, r.finding.api_id)}</td>
                <td>
                  <SeverityBadge severity={r.finding.severity} /> {r.finding.detector}
                </td>
                <td>{r.finding.method}</td>
                <td className="mono">{r.finding.endpoint_template}</td>
                <td colSpan={2}>{r.finding.message}</td>
                <td className="mono">{r.finding.client_ip}</td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  );
}

function PausedCount({ store }: { store: LiveStore<number> }) {
  const n = useLive(store);
  return <span role="status">{n > 0 ? `${n} new while paused` : "paused"}</span>;
}

export function LivePage() {
  const { apis } = useApis();
  const [apiId, setApiId] = useState("");
  const [filter, setFilter] = useState<LiveFilter>({ text: "", method: "", status: "", findingsOnly: false });
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  pausedRef.current = paused;
  const store = useMemo(() => new LiveStore<Row[]>([]), []);
  const held = useRef<Row[]>([]);
  const heldCount = useMemo(() => new LiveStore(0), []);
  const seq = useRef(0);

  const state = useStream("/ws/stream", { api_id: apiId || undefined, kinds: "events,findings" }, (m) => {
    const msg = m as { type?: string; event?: StreamEvent; finding?: Finding };
    let row: Row | null = null;
    if (msg.type === "event" && msg.event) row = { kind: "event", key: `e${msg.event.id}-${seq.current++}`, event: msg.event };
    else if (msg.type === "finding" && msg.finding) row = { kind: "finding", key: `f${msg.finding.id}-${seq.current++}`, finding: msg.finding };
    if (!row) return;
    if (pausedRef.current) {
      held.current.unshift(row);
      if (held.current.length > MAX_ROWS) held.current.length = MAX_ROWS;
      heldCount.set(held.current.length);
      return;
    }
    store.update((prev) => [row!, ...prev].slice(0, MAX_ROWS));
  });

  const togglePause = () => {
    if (paused) {
      const h = held.current;
      held.current = [];
      heldCount.set(0);
      store.update((prev) => [...h, ...prev].slice(0, MAX_ROWS));
    }
    setPaused(!paused);
  };
  const set = (p: Partial<LiveFilter>) => setFilter((f) => ({ ...f, ...p }));

  return (
    <Page
      title="Live stream"
      actions={
        <>
          <button type="button" className={paused ? "primary" : ""} aria-pressed={paused} onClick={togglePause}>
            {paused ? "Resume" : "Pause"}
          </button>
          <button type="button" onClick={() => store.set([])}>
            Clear
          </button>
        </>
      }
    >
      <p>
        <span className={`pill stream-${state}`} role="status" data-testid="stream-state">
          {streamStateText(state, "activity stream")}
        </span>{" "}
        {paused && <PausedCount store={heldCount} />}
      </p>
      {state === "unavailable" && (
        <p className="state error" role="alert">
          The live activity stream (/ws/stream) is not offered by this server. Recent requests are on the <Link to="/logs">Logs</Link> page.
        </p>
      )}
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <ApiSelect id="live-api" value={apiId} onChange={(v) => { store.set([]); setApiId(v); }} apis={apis} />
        <label htmlFor="live-text">
          Path, IP or user agent contains
          <input id="live-text" value={filter.text} onChange={(e) => set({ text: e.target.value })} />
        </label>
        <label htmlFor="live-method">
          Method
          <select id="live-method" value={filter.method} onChange={(e) => set({ method: e.target.value })}>
            <option value="">any</option>
            {["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
        <label htmlFor="live-status">
          Status
          <select id="live-status" value={filter.status} onChange={(e) => set({ status: e.target.value })}>
            <option value="">any</option>
            <option value="2">2xx</option>
            <option value="3">3xx</option>
            <option value="4">4xx</option>
            <option value="5">5xx</option>
          </select>
        </label>
        <label htmlFor="live-findings" className="check">
          <input id="live-findings" type="checkbox" checked={filter.findingsOnly} onChange={(e) => set({ findingsOnly: e.target.checked })} />
          Findings only
        </label>
      </form>
      <Rows store={store} filter={filter} apis={apis} />
    </Page>
  );
}
