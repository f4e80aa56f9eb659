import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { ApiSelect, apiName, useApis } from "../components/ApiSelect";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError, download, query } from "../lib/api";
import { formatTime, fromLocalInput } from "../lib/time";
import type { LogEvent } from "../lib/types";

export interface LogFilters {
  api_id: string;
  client_ip: string;
  endpoint: string;
  method: string;
  status_min: string;
  status_max: string;
  from: string; // datetime-local
  to: string;
}

const EMPTY: LogFilters = { api_id: "", client_ip: "", endpoint: "", method: "", status_min: "", status_max: "", from: "", to: "" };

export function logParams(f: LogFilters) {
  return {
    api_id: f.api_id,
    client_ip: f.client_ip.trim(),
    endpoint: f.endpoint.trim(),
    method: f.method,
    status_min: f.status_min,
    status_max: f.status_max,
    from: fromLocalInput(f.from),
    to: fromLocalInput(f.to),
  };
}

export function LogsPage() {
  const { apis } = useApis();
  const [draft, setDraft] = useState<LogFilters>(EMPTY);
  const [applied, setApplied] = useState<LogFilters>(EMPTY);
  const [rows, setRows] = useState<LogEvent[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const [exportMsg, setExportMsg] = useState<string | null>(null);
  const [selected, setSelected] = useState<LogEvent | null>(null);
  const gen = useRef(0);

  const load = useCallback(async (f: LogFilters, after: string | null) => {
    const g = ++gen.current;
    setLoading(true);
    setError(null);
    try {
      const r = await api.get<{ logs: LogEvent[]; next_cursor?: string | null }>("/api/logs" + query({ ...logParams(f), limit: 100, cursor: after }));
      if (g !== gen.current) return;
      setRows((prev) => (after && prev ? [...prev, ...r.logs] : r.logs));
      setCursor(r.next_cursor || null);
    } catch (e) {
      if (g === gen.current) setError(e instanceof ApiError ? e : new ApiError(0, String(e)));
    } finally {
      if (g === gen.current) setLoading(false);
    }
  }, []);
  useEffect(() => {
    void load(applied, null);
  }, [applied, load]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setApplied({ ...draft });
  };
  const set = (p: Partial<LogFilters>) => setDraft((d) => ({ ...d, ...p }));
  const exportCsv = async () => {
    setExportMsg("Exporting…");
    try {
      const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
      const size = await download("/api/export/logs" + query(logParams(applied)), `boing-logs-${stamp}.csv`);
      setExportMsg(`Exported ${size} bytes as CSV.`);
    } catch (e) {
      setExportMsg(`Export failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  return (
    <Page
      title="Logs"
      actions={
        <button type="button" onClick={() => void exportCsv()}>
          Export CSV
        </button>
      }
    >
      <form className="filters" onSubmit={submit} aria-label="Log filters">
        <ApiSelect id="logs-api" value={draft.api_id} onChange={(v) => set({ api_id: v })} apis={apis} />
        <label htmlFor="logs-ip">
          Client IP
          <input id="logs-ip" value={draft.client_ip} onChange={(e) => set({ client_ip: e.target.value })} />
        </label>
        <label htmlFor="logs-endpoint">
          Endpoint (end with * for a prefix)
          <input id="logs-endpoint" value={draft.endpoint} onChange={(e) => set({ endpoint: e.target.value })} placeholder="/users/*" />
        </label>
        <label htmlFor="logs-method">
          Method
          <select id="logs-method" value={draft.method} onChange={(e) => set({ method: e.target.value })}>
            <option value="">any</option>
            {["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
        <label htmlFor="logs-smin">
          Status from
          <input id="logs-smin" type="number" min={100} max={599} value={draft.status_min} onChange={(e) => set({ status_min: e.target.value })} />
        </label>
        <label htmlFor="logs-smax">
          Status to
          <input id="logs-smax" type="number" min={100} max={599} value={draft.status_max} onChange={(e) => set({ status_max: e.target.value })} />
        </label>
        <label htmlFor="logs-from">
          From
          <input id="logs-from" type="datetime-local" value={draft.from} onChange={(e) => set({ from: e.target.value })} />
        </label>
        <label htmlFor="logs-to">
          To
          <input id="logs-to" type="datetime-local" value={draft.to} onChange={(e) => set({ to: e.target.value })} />
        </label>
        <button type="submit" className="primary">
          Apply filters
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(EMPTY);
            setApplied(EMPTY);
          }}
        >
          Reset
        </button>
      </form>
      {exportMsg && (
        <p role="status" data-testid="export-status">
          {exportMsg}
        </p>
      )}
      {error ? (
        <ErrorBox error={error} onRetry={() => void load(applied, null)} />
      ) : rows === null ? (
        <Loading what="Loading logs" />
      ) : rows.length === 0 ? (
        <Empty>No requests match. Events sent to /api/ingest appear here once committed.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" data-testid="logs-table">
            <caption className="sr-only">Requests, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">API</th>
                <th scope="col">Method</th>
                <th scope="col">Endpoint</th>
                <th scope="col">Status</th>
                <th scope="col">Latency</th>
                <th scope="col">Client IP</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id}>
                  <td>{formatTime(r.timestamp)}</td>
                  <td>{apiName(apis, r.api_id)}</td>
                  <td>{r.method}</td>
                  <td className="mono">
                    {r.endpoint}
                    {r.query ? `?${r.query}` : ""}
                  </td>
                  <td className={r.status_code >= 400 ? "bad" : ""}>{r.status_code}</td>
                  <td className="num">{Math.round(r.latency_ms * 10) / 10} ms</td>
                  <td className="mono">{r.client_ip}</td>
                  <td>
                    <button type="button" onClick={() => setSelected(r)} aria-label={`Show details of request ${r.id}`}>
                      Show
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {cursor && (
            <button type="button" onClick={() => void load(applied, cursor)} disabled={loading}>
              Load more
            </button>
          )}
        </div>
      )}
      {selected && (
        <div className="card" role="region" aria-label={`Request ${selected.id}`}>
          <h2>Request {selected.id}</h2>
          <pre className="evidence" tabIndex={0}>
            {JSON.stringify(selected, null, 2)}
          </pre>
          <button type="button" onClick={() => setSelected(null)}>
            Close details
          </button>
        </div>
      )}
    </Page>
  );
}
