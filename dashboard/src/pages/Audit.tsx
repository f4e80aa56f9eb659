import { useEffect, useState } from "react";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError, query } from "../lib/api";
import { formatTime } from "../lib/time";
import type { AuditEntry } from "../lib/types";

const PAGE = 100;

export function AuditPage() {
  const [rows, setRows] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [more, setMore] = useState(false);
  const [busy, setBusy] = useState(false);
  const load = async (before?: number) => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.get<{ entries: AuditEntry[] }>("/api/audit" + query({ limit: PAGE, before_id: before }));
      setRows((prev) => (before && prev ? [...prev, ...r.entries] : r.entries));
      setMore(r.entries.length === PAGE);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, String(e)));
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void load();
  }, []);
  return (
    <Page title="Audit log">
      {error ? (
        <ErrorBox error={error} onRetry={() => void load()} />
      ) : rows === null ? (
        <Loading what="Loading the audit log" />
      ) : rows.length === 0 ? (
        <Empty>No administrative action recorded yet.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" data-testid="audit-table">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">User</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Client IP</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id}>
                  <td>{formatTime(r.ts_ms / 1000)}</td>
                  <td>{r.username}</td>
                  <td>{r.action}</td>
                  <td className="mono">{r.target}</td>
                  <td className="mono">{r.client_ip}</td>
                  <td className="mono small">{r.details && Object.keys(r.details as object).length ? JSON.stringify(r.details) : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {more && (
            <button type="button" disabled={busy} onClick={() => void load(rows[rows.length - 1].id)}>
              Load older entries
            </button>
          )}
        </div>
      )}
    </Page>
  );
}
