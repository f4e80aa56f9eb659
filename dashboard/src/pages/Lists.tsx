import { useState, type FormEvent } from "react";
import { ApiSelect, apiName, useApis } from "../components/ApiSelect";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError } from "../lib/api";
import { useAuth } from "../lib/auth";
import { formatTime } from "../lib/time";
import { useFetch } from "../lib/useFetch";
import type { Api, ListEntry } from "../lib/types";

const TTLS = [
  { label: "never", seconds: 0 },
  { label: "1 hour", seconds: 3600 },
  { label: "24 hours", seconds: 86400 },
  { label: "7 days", seconds: 604800 },
  { label: "30 days", seconds: 2592000 },
];

function ListSection({ list, title, apis }: { list: "whitelist" | "blacklist"; title: string; apis: Api[] }) {
  const { isAdmin } = useAuth();
  const { data, error, loading, reload } = useFetch<{ entries: ListEntry[] }>(`/api/${list}`);
  const [kind, setKind] = useState("ip");
  const [value, setValue] = useState("");
  const [reason, setReason] = useState("");
  const [apiId, setApiId] = useState("");
  const [ttl, setTtl] = useState("0");
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const p = list;
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    if (!value.trim()) {
      setFormError("Enter an IP address, a CIDR range or an identity hash.");
      return;
    }
    if (!isAdmin && !apiId) {
      setFormError("Choose one of your APIs: only administrators add global entries.");
      return;
    }
    const body: Record<string, unknown> = { kind, value: value.trim() };
    if (reason.trim()) body.reason = reason.trim();
    if (apiId) body.api_id = Number(apiId);
    if (Number(ttl) > 0) body.ttl_seconds = Number(ttl);
    setBusy(true);
    try {
      await api.post(`/api/${list}`, body);
      setValue("");
      setReason("");
      reload();
    } catch (err) {
      setFormError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async (en: ListEntry) => {
    try {
      await api.del(`/api/${list}/${en.id}`);
      reload();
    } catch (err) {
      setFormError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <section aria-labelledby={`${p}-title`} className="card">
      <h2 id={`${p}-title`}>{title}</h2>
      <form className="inline-form" onSubmit={add} aria-label={`Add to the ${title.toLowerCase()}`}>
        <label htmlFor={`${p}-kind`}>
          Kind
          <select id={`${p}-kind`} value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="ip">IP address</option>
            <option value="cidr">CIDR range</option>
            <option value="identity">identity</option>
          </select>
        </label>
        <label htmlFor={`${p}-value`}>
          Value
          <input id={`${p}-value`} value={value} onChange={(e) => setValue(e.target.value)} placeholder={kind === "cidr" ? "10.0.0.0/8" : kind === "ip" ? "203.0.113.7" : "identity hash"} />
        </label>
        <label htmlFor={`${p}-reason`}>
          Reason
          <input id={`${p}-reason`} value={reason} onChange={(e) => setReason(e.target.value)} />
        </label>
        <ApiSelect id={`${p}-api`} label={isAdmin ? "API (empty = global)" : "API"} value={apiId} onChange={setApiId} apis={apis} />
        <label htmlFor={`${p}-ttl`}>
          Expires after
          <select id={`${p}-ttl`} value={ttl} onChange={(e) => setTtl(e.target.value)}>
            {TTLS.map((t) => (
              <option key={t.seconds} value={t.seconds}>
                {t.label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Add
        </button>
      </form>
      {formError && (
        <p className="state error" role="alert">
          {formError}
        </p>
      )}
      {error ? (
        <ErrorBox error={error} onRetry={reload} />
      ) : loading && !data ? (
        <Loading />
      ) : !data || data.entries.length === 0 ? (
        <Empty>The {title.toLowerCase()} is empty.</Empty>
      ) : (
        <table className="data" data-testid={`${p}-table`}>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">Value</th>
              <th scope="col">Scope</th>
              <th scope="col">Reason</th>
              <th scope="col">Expires</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data.entries.map((en) => (
              <tr key={en.id}>
                <td>{en.kind}</td>
                <td className="mono">{en.value}</td>
                <td>{en.api_id ? apiName(apis, en.api_id) : "global"}</td>
                <td>{en.reason || "—"}</td>
                <td>{en.expires_at ? formatTime(en.expires_at) : "never"}</td>
                <td>
                  <button type="button" className="danger" onClick={() => void remove(en)} aria-label={`Remove ${en.value} from the ${title.toLowerCase()}`}>
                    Remove
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

export function ListsPage() {
  const { apis } = useApis();
  return (
    <Page title="Allow and block lists">
      <p className="muted">Allow-listed callers raise no findings; requests from block-listed ones are reported by the blacklist detector.</p>
      <ListSection list="whitelist" title="Allow list" apis={apis} />
      <ListSection list="blacklist" title="Block list" apis={apis} />
    </Page>
  );
}
