import { useState } from "react";
import { SeveritySelect } from "../components/Severity";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError } from "../lib/api";
import { useAuth } from "../lib/auth";
import { formatTime } from "../lib/time";
import { useFetch } from "../lib/useFetch";
import type { Detector } from "../lib/types";

function DetectorCard({ d, canEdit, onSaved }: { d: Detector; canEdit: boolean; onSaved: (d: Detector) => void }) {
  const [enabled, setEnabled] = useState(d.enabled);
  const [severity, setSeverity] = useState<string>(d.severity);
  const [config, setConfig] = useState(JSON.stringify(d.config, null, 2));
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async () => {
    setError(null);
    setSaved(null);
    let cfg: unknown;
    try {
      cfg = JSON.parse(config);
    } catch (e) {
      setError(`The configuration is not valid JSON: ${(e as Error).message}`);
      return;
    }
    if (!cfg || typeof cfg !== "object" || Array.isArray(cfg)) {
      setError("The configuration must be a JSON object.");
      return;
    }
    setBusy(true);
    try {
      const nd = await api.put<Detector>(`/api/detectors/${encodeURIComponent(d.id)}`, { enabled, severity, config: cfg });
      onSaved(nd);
      setSaved("Saved; applies from the next event.");
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const id = `det-${d.id}`;
  return (
    <article className="card detector" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>
        {d.name || d.id} <span className="muted">({d.stage})</span>
        {d.implemented === false && <span className="pill">not implemented yet</span>}
        {d.unavailable && <span className="pill">unavailable</span>}
      </h2>
      {d.unavailable && (
        <p className="state error" role="note">
          Cannot run: {d.unavailable}
        </p>
      )}
      <div className="inline-form">
        <label htmlFor={`${id}-enabled`} className="check">
          <input id={`${id}-enabled`} type="checkbox" checked={enabled} disabled={!canEdit} onChange={(e) => setEnabled(e.target.checked)} />
          Enabled
        </label>
        {canEdit ? (
          <SeveritySelect id={`${id}-severity`} label="Severity" value={severity} onChange={setSeverity} allowAny={false} />
        ) : (
          <span>Severity: {d.severity}</span>
        )}
      </div>
      <label htmlFor={`${id}-config`}>
        Configuration (JSON)
        <textarea id={`${id}-config`} rows={Math.min(12, config.split("\n").length + 1)} value={config} readOnly={!canEdit} onChange={(e) => setConfig(e.target.value)} spellCheck={false} />
      </label>
      <p className="muted">Last changed {formatTime(d.updated_at)}</p>
      {canEdit && (
        <button type="button" className="primary" onClick={() => void save()} disabled={busy}>
          Save {d.name || d.id}
        </button>
      )}
      {error && (
        <p className="state error" role="alert">
          {error}
        </p>
      )}
      {saved && <p role="status">{saved}</p>}
    </article>
  );
}

export function DetectorsPage() {
  const { isAdmin } = useAuth();
  const { data, error, loading, reload, setData } = useFetch<{ detectors: Detector[] }>("/api/detectors");
  return (
    <Page title="Detectors">
      {!isAdmin && <p className="muted">Only administrators change detector settings; you can read them here.</p>}
      {error ? (
        <ErrorBox error={error} onRetry={reload} />
      ) : loading && !data ? (
        <Loading what="Loading detectors" />
      ) : !data || data.detectors.length === 0 ? (
        <Empty>No detectors configured.</Empty>
      ) : (
        <div className="grid detectors">
          {data.detectors.map((d) => (
            <DetectorCard key={d.id} d={d} canEdit={isAdmin} onSaved={(nd) => setData({ detectors: data.detectors.map((x) => (x.id === nd.id ? nd : x)) })} />
          ))}
        </div>
      )}
    </Page>
  );
}
