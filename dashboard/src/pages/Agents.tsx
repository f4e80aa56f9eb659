import { useState } from "react";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError } from "../lib/api";
import { formatTime, relative } from "../lib/time";
import { useFetch } from "../lib/useFetch";
import type { Agent } from "../lib/types";

function Counters({ c }: { c: Record<string, number> }) {
  const entries = Object.entries(c ?? {});
  if (entries.length === 0) return <span className="muted">none reported</span>;
  return (
    <dl className="counters">
      {entries.map(([k, v]) => (
        <div key={k}>
          <dt>{k.replace(/_/g, " ")}</dt>
          <dd>{typeof v === "number" ? v.toLocaleString() : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

export function AgentsPage() {
  const { data, error, loading, reload } = useFetch<{ agents: Agent[] }>("/api/agents");
  const [token, setToken] = useState<{ enrollment_token: string; expires_at: number } | null>(null);
  const [name, setName] = useState("");
  const [msg, setMsg] = useState<string | null>(null);
  const enroll = async () => {
    setMsg(null);
    try {
      setToken(await api.post("/api/agents", name.trim() ? { name: name.trim() } : {}));
    } catch (e) {
      setMsg(e instanceof ApiError ? e.message : String(e));
    }
  };
  const revoke = async (a: Agent) => {
    if (!window.confirm(`Revoke agent ${a.hostname}? Its token stops working at once.`)) return;
    try {
      await api.del(`/api/agents/${encodeURIComponent(a.agent_id)}`);
      reload();
    } catch (e) {
      setMsg(e instanceof ApiError ? e.message : String(e));
    }
  };
  return (
    <Page title="Agents">
      <div className="card inline-form">
        <label htmlFor="agent-name">
          Host name (optional)
          <input id="agent-name" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <button type="button" className="primary" onClick={() => void enroll()}>
          Create an enrolment token
        </button>
        {token && (
          <p role="status">
            Single-use token, valid until {formatTime(token.expires_at)}: <code className="key">{token.enrollment_token}</code>
            <br />
            <code className="mono small">
              boing-agent --server {window.location.origin} --enroll-token {token.enrollment_token} --state-dir /var/lib/boing-agent
            </code>
          </p>
        )}
        {msg && (
          <p className="state error" role="alert">
            {msg}
          </p>
        )}
      </div>
      {error ? (
        <ErrorBox error={error} onRetry={reload} />
      ) : loading && !data ? (
        <Loading what="Loading agents" />
      ) : !data || data.agents.length === 0 ? (
        <Empty>No agent has enrolled yet. Create an enrolment token above and start boing-agent with it.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" data-testid="agents-table">
            <thead>
              <tr>
                <th scope="col">Host</th>
                <th scope="col">Version</th>
                <th scope="col">Enrolled</th>
                <th scope="col">Last seen</th>
                <th scope="col">Capture and drop counters</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {data.agents.map((a) => (
                <tr key={a.agent_id} className={a.revoked ? "revoked" : ""}>
                  <td>
                    {a.hostname}
                    <div className="muted mono small">{a.agent_id}</div>
                  </td>
                  <td>{a.version}</td>
                  <td>{formatTime(a.enrolled_at)}</td>
                  <td title={formatTime(a.last_seen)}>{relative(a.last_seen)}</td>
                  <td>
                    <Counters c={a.counters} />
                  </td>
                  <td>
                    {a.revoked ? (
                      "revoked"
                    ) : (
                      <button type="button" className="danger" onClick={() => void revoke(a)} aria-label={`Revoke agent ${a.hostname}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
