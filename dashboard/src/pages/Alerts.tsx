import { useCallback, useEffect, useRef, useState } from "react";
import { Link } from "react-router-dom";
import { ApiSelect, useApis } from "../components/ApiSelect";
import { AlertActions } from "../components/AlertActions";
import { SeverityBadge, SeveritySelect } from "../components/Severity";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError, query } from "../lib/api";
import { formatTime } from "../lib/time";
import { useStream } from "../lib/ws";
import type { Alert } from "../lib/types";

export function AlertsPage() {
  const { apis } = useApis();
  const [status, setStatus] = useState("open");
  const [severity, setSeverity] = useState("");
  const [apiId, setApiId] = useState("");
  const [detector, setDetector] = useState("");
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const gen = useRef(0);

  const params = { status, severity, api_id: apiId, detector: detector.trim(), limit: 100 };
  const load = useCallback(
    async (more = false) => {
      const g = ++gen.current;
      setLoading(true);
      setError(null);
      try {
        const r = await api.get<{ alerts: Alert[]; next_cursor?: string | null }>("/api/alerts" + query({ ...params, cursor: more ? cursor : undefined }));
        if (g !== gen.current) return;
        setAlerts((prev) => (more && prev ? [...prev, ...r.alerts] : r.alerts));
        setCursor(r.next_cursor || null);
      } catch (e) {
        if (g === gen.current) setError(e instanceof ApiError ? e : new ApiError(0, String(e)));
      } finally {
        if (g === gen.current) setLoading(false);
      }
    },
    [status, severity, apiId, detector, cursor],
  );
  useEffect(() => {
    void load(false);
  }, [status, severity, apiId, detector]);

  // New and changed alerts arrive on /ws/alerts: update rows in place, and reload (debounced) when
  // a new alert may belong in the list.
  const reloadTimer = useRef<ReturnType<typeof setTimeout>>();
  const wsState = useStream("/ws/alerts", { api_id: apiId || undefined }, (m) => {
    const msg = m as { type?: string; action?: string; alert?: Alert };
    if (msg.type !== "alert" || !msg.alert) return;
    const a = msg.alert;
    setAlerts((prev) => (prev ? prev.map((x) => (x.id === a.id ? a : x)) : prev));
    if (msg.action === "created") {
      clearTimeout(reloadTimer.current);
      reloadTimer.current = setTimeout(() => void load(false), 500);
    }
  });

  // Alerts created between the first load and the stream's opening are picked up here.
  useEffect(() => {
    if (wsState === "open") void load(false);
  }, [wsState]);

  const replace = (a: Alert) => setAlerts((prev) => (prev ? prev.map((x) => (x.id === a.id ? a : x)) : prev));

  return (
    <Page title="Alerts">
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label htmlFor="alert-status">
          Status
          <select id="alert-status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            <option value="open">open</option>
            <option value="acknowledged">acknowledged</option>
            <option value="resolved">resolved</option>
          </select>
        </label>
        <SeveritySelect id="alert-severity" label="Severity" value={severity} onChange={setSeverity} />
        <ApiSelect id="alert-api" value={apiId} onChange={setApiId} apis={apis} />
        <label htmlFor="alert-detector">
          Detector
          <input id="alert-detector" value={detector} onChange={(e) => setDetector(e.target.value)} placeholder="e.g. sqli" />
        </label>
      </form>
      {error ? (
        <ErrorBox error={error} what="Alerts" onRetry={() => void load(false)} />
      ) : alerts === null ? (
        <Loading what="Loading alerts" />
      ) : alerts.length === 0 ? (
        <Empty>No alerts match these filters.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" data-testid="alerts-table">
            <caption className="sr-only">Alerts, most recent activity first</caption>
            <thead>
              <tr>
                <th scope="col">Severity</th>
                <th scope="col">Alert</th>
                <th scope="col">API</th>
                <th scope="col">Actor</th>
                <th scope="col">Count</th>
                <th scope="col">Last seen</th>
                <th scope="col">Status</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {alerts.map((a) => (
                <tr key={a.id}>
                  <td>
                    <SeverityBadge severity={a.severity} />
                  </td>
                  <td>
                    <Link to={`/alerts/${a.id}`}>{a.message || a.detector}</Link>
                    <div className="muted mono">
                      {a.detector} · {a.endpoint_template}
                    </div>
                  </td>
                  <td>{a.api_name}</td>
                  <td className="mono">{a.actor}</td>
                  <td className="num">{a.count}</td>
                  <td>{formatTime(a.last_seen)}</td>
                  <td>
                    {a.status}
                    {a.muted && <span className="pill">muted</span>}
                  </td>
                  <td>
                    <AlertActions alert={a} onChange={replace} compact />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {cursor && (
            <button type="button" onClick={() => void load(true)} disabled={loading}>
              Load more
            </button>
          )}
        </div>
      )}
    </Page>
  );
}
