import { useParams, Link } from "react-router-dom";
import { AlertActions } from "../components/AlertActions";
import { SeverityBadge } from "../components/Severity";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { useFetch } from "../lib/useFetch";
import { formatTime } from "../lib/time";
import type { Alert } from "../lib/types";

interface Delivery {
  id: number;
  channel_name: string;
  kind: string;
  status: string;
  attempts: number;
  last_error: string;
  updated_at: number;
}

function Deliveries({ id }: { id: string }) {
  const { data, error } = useFetch<{ deliveries: Delivery[] }>(`/api/alerts/${id}/deliveries`);
  if (error) return <ErrorBox error={error} what="Delivery status" />;
  if (!data) return <Loading />;
  if (data.deliveries.length === 0) return <Empty>No notification channel was due for this alert.</Empty>;
  return (
    <table className="data">
      <thead>
        <tr>
          <th scope="col">Channel</th>
          <th scope="col">Kind</th>
          <th scope="col">Status</th>
          <th scope="col">Attempts</th>
          <th scope="col">Last error</th>
          <th scope="col">Updated</th>
        </tr>
      </thead>
      <tbody>
        {data.deliveries.map((d) => (
          <tr key={d.id}>
            <td>{d.channel_name}</td>
            <td>{d.kind}</td>
            <td>{d.status}</td>
            <td className="num">{d.attempts}</td>
            <td>{d.last_error || "—"}</td>
            <td>{formatTime(d.updated_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function AlertDetailPage() {
  const { id = "" } = useParams();
  const { data: alert, error, loading, reload, setData } = useFetch<Alert>(`/api/alerts/${encodeURIComponent(id)}`);
  return (
    <Page title={alert ? `Alert #${alert.id}` : "Alert"} actions={<Link to="/alerts">Back to alerts</Link>}>
      {error ? (
        <ErrorBox error={error} what="This alert" onRetry={reload} />
      ) : loading && !alert ? (
        <Loading what="Loading the alert" />
      ) : alert ? (
        <>
          <div className="card">
            <p className="alert-title">
              <SeverityBadge severity={alert.severity} /> <strong data-testid="alert-message">{alert.message || alert.detector}</strong>
            </p>
            <dl className="facts">
              <dt>Status</dt>
              <dd data-testid="alert-status">
                {alert.status}
                {alert.muted && ` (muted${alert.muted_until ? ` until ${formatTime(alert.muted_until)}` : ""})`}
              </dd>
              <dt>API</dt>
              <dd>{alert.api_name}</dd>
              <dt>Detector</dt>
              <dd>{alert.detector}</dd>
              <dt>Actor</dt>
              <dd className="mono">{alert.actor}</dd>
              <dt>Endpoint</dt>
              <dd className="mono">{alert.endpoint_template}</dd>
              <dt>Occurrences</dt>
              <dd>{alert.count}</dd>
              <dt>First seen</dt>
              <dd>{formatTime(alert.first_seen)}</dd>
              <dt>Last seen</dt>
              <dd>{formatTime(alert.last_seen)}</dd>
              {alert.acknowledged_by && (
                <>
                  <dt>Acknowledged</dt>
                  <dd>
                    by {alert.acknowledged_by} at {formatTime(alert.acknowledged_at)}
                    {alert.ack_comment ? ` — “${alert.ack_comment}”` : ""}
                  </dd>
                </>
              )}
              {alert.resolved_at && (
                <>
                  <dt>Resolved</dt>
                  <dd>
                    {formatTime(alert.resolved_at)} by {alert.resolved_by}
                  </dd>
                </>
              )}
            </dl>
            <AlertActions alert={alert} onChange={(a) => setData({ ...alert, ...a })} />
          </div>
          <h2>Evidence</h2>
          <pre className="evidence" tabIndex={0} aria-label="Evidence">
            {JSON.stringify(alert.evidence, null, 2)}
          </pre>
          <h2>Findings</h2>
          {!alert.findings || alert.findings.length === 0 ? (
            <Empty>No findings attached.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Severity</th>
                    <th scope="col">Message</th>
                    <th scope="col">Evidence</th>
                  </tr>
                </thead>
                <tbody>
                  {alert.findings.map((f) => (
                    <tr key={f.id}>
                      <td>{formatTime(f.timestamp)}</td>
                      <td>
                        <SeverityBadge severity={f.severity} />
                      </td>
                      <td>{f.message}</td>
                      <td className="mono small">{JSON.stringify(f.evidence)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h2>Requests behind it</h2>
          {!alert.events || alert.events.length === 0 ? (
            <Empty>No stored requests attached.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Method</th>
                    <th scope="col">Endpoint</th>
                    <th scope="col">Status</th>
                    <th scope="col">Client IP</th>
                  </tr>
                </thead>
                <tbody>
                  {alert.events.map((e) => (
                    <tr key={e.id}>
                      <td>{formatTime(e.timestamp)}</td>
                      <td>{e.method}</td>
                      <td className="mono">
                        {e.endpoint}
                        {e.query ? `?${e.query}` : ""}
                      </td>
                      <td>{e.status_code}</td>
                      <td className="mono">{e.client_ip}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h2>Notifications sent</h2>
          <Deliveries id={id} />
        </>
      ) : null}
    </Page>
  );
}
