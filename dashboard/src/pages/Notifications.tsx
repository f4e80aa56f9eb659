// Notification settings: the in-app threshold (this browser), mute rules, and (admins) the
// delivery channels — email, webhook, Slack (docs/api.md, "Alerts").
import { useState, type FormEvent } from "react";
import { ApiSelect, apiName, useApis } from "../components/ApiSelect";
import { useNotifications } from "../components/Notifications";
import { MUTE_DURATIONS } from "../components/AlertActions";
import { SeveritySelect } from "../components/Severity";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError } from "../lib/api";
import { useAuth } from "../lib/auth";
import { formatTime } from "../lib/time";
import { useFetch } from "../lib/useFetch";
import { SEVERITIES, type Severity } from "../lib/types";

interface Mute {
  id: number;
  detector: string | null;
  actor: string | null;
  api_id: number | null;
  expires_at: number;
  comment: string;
  created_by: string;
  created_at: number;
}

interface Channel {
  id: number;
  name: string;
  kind: "email" | "webhook" | "slack";
  enabled: boolean;
  min_severity: Severity;
  api_ids: number[];
  config: { recipients?: string[]; url?: string; secret?: string };
}

function errText(e: unknown) {
  return e instanceof ApiError ? e.message : String(e);
}

function MuteRules() {
  const { apis } = useApis();
  const { data, error, loading, reload } = useFetch<{ mutes: Mute[] }>("/api/mutes");
  const [detector, setDetector] = useState("");
  const [actor, setActor] = useState("");
  const [apiId, setApiId] = useState("");
  const [duration, setDuration] = useState(String(MUTE_DURATIONS[1].seconds));
  const [comment, setComment] = useState("");
  const [msg, setMsg] = useState<string | null>(null);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setMsg(null);
    if (!detector.trim() && !actor.trim() && !apiId) {
      setMsg("Choose at least one of detector, actor or API.");
      return;
    }
    const body: Record<string, unknown> = { duration_seconds: Number(duration) };
    if (detector.trim()) body.detector = detector.trim();
    if (actor.trim()) body.actor = actor.trim();
    if (apiId) body.api_id = Number(apiId);
    if (comment.trim()) body.comment = comment.trim();
    try {
      await api.post("/api/mutes", body);
      setDetector("");
      setActor("");
      setComment("");
      reload();
    } catch (err) {
      setMsg(errText(err));
    }
  };
  const remove = async (m: Mute) => {
    try {
      await api.del(`/api/mutes/${m.id}`);
      reload();
    } catch (err) {
      setMsg(errText(err));
    }
  };
  return (
    <section className="card" aria-labelledby="mutes-title">
      <h2 id="mutes-title">Mute rules</h2>
      <p className="muted">Alerts matching a rule keep counting but are not notified until it expires.</p>
      <form className="inline-form" onSubmit={add} aria-label="Add a mute rule">
        <label htmlFor="mute-detector">
          Detector
          <input id="mute-detector" value={detector} onChange={(e) => setDetector(e.target.value)} placeholder="e.g. rate_limit" />
        </label>
        <label htmlFor="mute-actor">
          Actor
          <input id="mute-actor" value={actor} onChange={(e) => setActor(e.target.value)} placeholder="ip:203.0.113.7" />
        </label>
        <ApiSelect id="mute-api" value={apiId} onChange={setApiId} apis={apis} label="API" />
        <label htmlFor="mute-duration">
          For
          <select id="mute-duration" value={duration} onChange={(e) => setDuration(e.target.value)}>
            {MUTE_DURATIONS.map((d) => (
              <option key={d.seconds} value={d.seconds}>
                {d.label}
              </option>
            ))}
          </select>
        </label>
        <label htmlFor="mute-comment">
          Comment
          <input id="mute-comment" value={comment} onChange={(e) => setComment(e.target.value)} />
        </label>
        <button type="submit" className="primary">
          Add mute rule
        </button>
      </form>
      {msg && (
        <p className="state error" role="alert">
          {msg}
        </p>
      )}
      {error ? (
        <ErrorBox error={error} what="Mute rules" onRetry={reload} />
      ) : loading && !data ? (
        <Loading />
      ) : !data || data.mutes.length === 0 ? (
        <Empty>No active mute rule.</Empty>
      ) : (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Detector</th>
              <th scope="col">Actor</th>
              <th scope="col">API</th>
              <th scope="col">Until</th>
              <th scope="col">By</th>
              <th scope="col">Comment</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data.mutes.map((m) => (
              <tr key={m.id}>
                <td>{m.detector || "any"}</td>
                <td className="mono">{m.actor || "any"}</td>
                <td>{m.api_id ? apiName(apis, m.api_id) : "any"}</td>
                <td>{formatTime(m.expires_at)}</td>
                <td>{m.created_by}</td>
                <td>{m.comment || "—"}</td>
                <td>
                  <button type="button" className="danger" onClick={() => void remove(m)} aria-label={`Delete mute rule ${m.id}`}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Channels() {
  const { apis } = useApis();
  const { data, error, loading, reload } = useFetch<{ channels: Channel[] }>("/api/channels");
  const [name, setName] = useState("");
  const [kind, setKind] = useState<Channel["kind"]>("email");
  const [target, setTarget] = useState("");
  const [secret, setSecret] = useState("");
  const [minSeverity, setMinSeverity] = useState<string>("high");
  const [msg, setMsg] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setMsg(null);
    if (!name.trim() || !target.trim()) {
      setMsg(kind === "email" ? "Give the channel a name and at least one recipient." : "Give the channel a name and a URL.");
      return;
    }
    const config =
      kind === "email"
        ? { recipients: target.split(/[,\s]+/).filter(Boolean) }
        : kind === "webhook"
          ? { url: target.trim(), ...(secret ? { secret } : {}) }
          : { url: target.trim() };
    try {
      await api.post("/api/channels", { name: name.trim(), kind, min_severity: minSeverity, config });
      setName("");
      setTarget("");
      setSecret("");
      reload();
    } catch (err) {
      setMsg(errText(err));
    }
  };
  const toggle = async (c: Channel) => {
    try {
      await api.put(`/api/channels/${c.id}`, { enabled: !c.enabled });
      reload();
    } catch (err) {
      setMsg(errText(err));
    }
  };
  const test = async (c: Channel) => {
    setInfo(null);
    try {
      await api.post(`/api/channels/${c.id}/test`);
      setInfo(`A test notification is on its way through “${c.name}”.`);
    } catch (err) {
      setMsg(errText(err));
    }
  };
  const remove = async (c: Channel) => {
    if (!window.confirm(`Delete the channel “${c.name}”?`)) return;
    try {
      await api.del(`/api/channels/${c.id}`);
      reload();
    } catch (err) {
      setMsg(errText(err));
    }
  };
  return (
    <section className="card" aria-labelledby="channels-title">
      <h2 id="channels-title">Delivery channels</h2>
      <form className="inline-form" onSubmit={add} aria-label="Add a channel">
        <label htmlFor="ch-name">
          Name
          <input id="ch-name" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label htmlFor="ch-kind">
          Kind
          <select id="ch-kind" value={kind} onChange={(e) => setKind(e.target.value as Channel["kind"])}>
            <option value="email">email</option>
            <option value="webhook">webhook</option>
            <option value="slack">Slack</option>
          </select>
        </label>
        <label htmlFor="ch-target">
          {kind === "email" ? "Recipients (comma separated)" : kind === "slack" ? "Slack webhook URL" : "Webhook URL"}
          <input id="ch-target" value={target} onChange={(e) => setTarget(e.target.value)} />
        </label>
        {kind === "webhook" && (
          <label htmlFor="ch-secret">
            Signing secret (optional)
            <input id="ch-secret" type="password" autoComplete="off" value={secret} onChange={(e) => setSecret(e.target.value)} />
          </label>
        )}
        <SeveritySelect id="ch-min" label="Minimum severity" value={minSeverity} onChange={setMinSeverity} allowAny={false} />
        <button type="submit" className="primary">
          Add channel
        </button>
      </form>
      {msg && (
        <p className="state error" role="alert">
          {msg}
        </p>
      )}
      {info && <p role="status">{info}</p>}
      {error ? (
        <ErrorBox error={error} what="Delivery channels" onRetry={reload} />
      ) : loading && !data ? (
        <Loading />
      ) : !data || data.channels.length === 0 ? (
        <Empty>No channel yet: alerts are only shown here, in the dashboard.</Empty>
      ) : (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Target</th>
              <th scope="col">Minimum severity</th>
              <th scope="col">APIs</th>
              <th scope="col">Enabled</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data.channels.map((c) => (
              <tr key={c.id}>
                <td>{c.name}</td>
                <td>{c.kind}</td>
                <td className="mono">{c.config.recipients ? c.config.recipients.join(", ") : c.config.url}</td>
                <td>{c.min_severity}</td>
                <td>{c.api_ids && c.api_ids.length ? c.api_ids.map((id) => apiName(apis, id)).join(", ") : "all"}</td>
                <td>{c.enabled ? "yes" : "no"}</td>
                <td>
                  <button type="button" onClick={() => void toggle(c)} aria-label={`${c.enabled ? "Disable" : "Enable"} channel ${c.name}`}>
                    {c.enabled ? "Disable" : "Enable"}
                  </button>{" "}
                  <button type="button" onClick={() => void test(c)} aria-label={`Send a test through ${c.name}`}>
                    Send a test
                  </button>{" "}
                  <button type="button" className="danger" onClick={() => void remove(c)} aria-label={`Delete channel ${c.name}`}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function NotificationsPage() {
  const { isAdmin } = useAuth();
  const { minSeverity, setMinSeverity } = useNotifications();
  return (
    <Page title="Notifications">
      <section className="card" aria-labelledby="inapp-title">
        <h2 id="inapp-title">In this browser</h2>
        <p className="muted">A toast appears for each new alert at or above this severity; the bell counts the unread ones.</p>
        <label htmlFor="inapp-min">
          Notify me at
          <select id="inapp-min" value={minSeverity} onChange={(e) => setMinSeverity(e.target.value as Severity)}>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s} or above
              </option>
            ))}
          </select>
        </label>
      </section>
      <MuteRules />
      {isAdmin && <Channels />}
    </Page>
  );
}
