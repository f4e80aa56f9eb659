import { useState, type FormEvent } from "react";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { SnippetTabs } from "../components/SnippetTabs";
import { api, ApiError } from "../lib/api";
import { useAuth } from "../lib/auth";
import { snippets } from "../lib/snippets";
import { formatTime } from "../lib/time";
import { useFetch } from "../lib/useFetch";
import type { Api } from "../lib/types";

// The ingest key is shown once, right after creation or rotation, with the snippets filled in.
function KeyOnce({ created, onDone }: { created: Api; onDone: () => void }) {
  return (
    <div className="card key-once" role="region" aria-labelledby="key-once-title">
      <h2 id="key-once-title">Ingest key for “{created.name}”</h2>
      <p>
        Copy it now: <strong>it is shown only once</strong>. Boing stores only its hash.
      </p>
      <p>
        <code className="key" data-testid="ingest-key">
          {created.ingest_key}
        </code>
      </p>
      <p>
        Instrument your application with one of these snippets, already filled in for this server and key (Node.js needs{" "}
        <code>npm install express axios</code>, Python <code>pip install requests</code>):
      </p>
      <SnippetTabs items={snippets(window.location.origin, created.ingest_key ?? "")} />
      <p className="done">
        <button type="button" onClick={onDone}>
          I have stored the key
        </button>
      </p>
    </div>
  );
}

export function ApisPage() {
  const { user, isAdmin } = useAuth();
  const { data, error, loading, reload } = useFetch<{ apis: Api[] }>("/api/apis");
  const [name, setName] = useState("");
  const [baseUrl, setBaseUrl] = useState("");
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<Api | null>(null);
  const [rowError, setRowError] = useState<string | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    if (!name.trim()) {
      setFormError("Give the API a name.");
      return;
    }
    setBusy(true);
    try {
      const body: Record<string, string> = { name: name.trim() };
      if (baseUrl.trim()) body.base_url = baseUrl.trim();
      const a = await api.post<Api>("/api/apis", body);
      setCreated(a);
      setName("");
      setBaseUrl("");
      reload();
    } catch (err) {
      setFormError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  const rotate = async (a: Api) => {
    if (!window.confirm(`Rotate the ingest key of “${a.name}”? Applications using the old key stop being accepted.`)) return;
    try {
      setCreated(await api.put<Api>(`/api/apis/${a.id}`, { rotate_ingest_key: true }));
      reload();
    } catch (err) {
      setRowError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const remove = async (a: Api) => {
    if (!window.confirm(`Delete “${a.name}” and all its stored events?`)) return;
    try {
      await api.del(`/api/apis/${a.id}`);
      reload();
    } catch (err) {
      setRowError(err instanceof ApiError ? err.message : String(err));
    }
  };

  return (
    <Page title="APIs">
      {created && <KeyOnce created={created} onDone={() => setCreated(null)} />}
      <form className="card inline-form" onSubmit={create} aria-labelledby="create-api-title">
        <h2 id="create-api-title">Monitor a new API</h2>
        <label htmlFor="api-name">
          Name
          <input id="api-name" value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label htmlFor="api-base-url">
          Base URL (optional)
          <input id="api-base-url" value={baseUrl} onChange={(e) => setBaseUrl(e.target.value)} placeholder="https://shop.example.com" />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Create API
        </button>
        {formError && (
          <p className="state error" role="alert">
            {formError}
          </p>
        )}
      </form>
      <h2>{isAdmin ? "All APIs" : "Your APIs"}</h2>
      {rowError && (
        <p className="state error" role="alert">
          {rowError}
        </p>
      )}
      {error ? (
        <ErrorBox error={error} onRetry={reload} />
      ) : loading && !data ? (
        <Loading what="Loading APIs" />
      ) : !data || data.apis.length === 0 ? (
        <Empty>No APIs yet. Create one above to get an ingest key.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" data-testid="apis-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Base URL</th>
                <th scope="col">Key prefix</th>
                {isAdmin && <th scope="col">Owner</th>}
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {data.apis.map((a) => (
                <tr key={a.id}>
                  <td>{a.name}</td>
                  <td>{a.base_url || "—"}</td>
                  <td className="mono">{a.ingest_key_prefix}…</td>
                  {isAdmin && <td>{a.owner_id === user?.id ? "you" : `user #${a.owner_id}`}</td>}
                  <td>{formatTime(a.created_at)}</td>
                  <td>
                    <button type="button" onClick={() => void rotate(a)} aria-label={`Rotate key of ${a.name}`}>
                      Rotate key
                    </button>{" "}
                    <button type="button" className="danger" onClick={() => void remove(a)} aria-label={`Delete ${a.name}`}>
                      Delete
                    </button>
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
