// Acknowledge, mute (with a duration) and resolve one alert.
import { useState } from "react";
import { api, ApiError } from "../lib/api";
import type { Alert } from "../lib/types";
import { formatTime } from "../lib/time";

export const MUTE_DURATIONS: { label: string; seconds: number }[] = [
  { label: "15 minutes", seconds: 900 },
  { label: "1 hour", seconds: 3600 },
  { label: "4 hours", seconds: 14400 },
  { label: "24 hours", seconds: 86400 },
  { label: "7 days", seconds: 604800 },
];

export function AlertActions({ alert, onChange, compact = false }: { alert: Alert; onChange: (a: Alert) => void; compact?: boolean }) {
  const [duration, setDuration] = useState(String(MUTE_DURATIONS[1].seconds));
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (fn: () => Promise<Alert>) => {
    setBusy(true);
    setError(null);
    try {
      onChange(await fn());
      setComment("");
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const body = comment ? { comment } : {};
  const id = `a${alert.id}`;
  return (
    <div className="alert-actions">
      {!compact && (
        <label htmlFor={`${id}-comment`}>
          Comment (optional)
          <input id={`${id}-comment`} value={comment} onChange={(e) => setComment(e.target.value)} />
        </label>
      )}
      {alert.status === "open" && (
        <button type="button" disabled={busy} onClick={() => run(() => api.post<Alert>(`/api/alerts/${alert.id}/ack`, body))} aria-label={`Acknowledge alert ${alert.id}`}>
          Acknowledge
        </button>
      )}
      {alert.status !== "resolved" && !compact && (
        <button type="button" disabled={busy} onClick={() => run(() => api.post<Alert>(`/api/alerts/${alert.id}/resolve`, body))}>
          Resolve
        </button>
      )}
      {alert.muted && alert.muted_until ? <span className="muted">muted until {formatTime(alert.muted_until)}</span> : null}
      {alert.muted ? (
        <button type="button" disabled={busy} onClick={() => run(() => api.put<Alert>(`/api/alerts/${alert.id}/mute`, { duration_seconds: 0 }))} aria-label={`Unmute alert ${alert.id}`}>
          Unmute
        </button>
      ) : (
        <span className="mute">
          <label htmlFor={`${id}-mute`} className="sr-only">
            Mute alert {alert.id} for
          </label>
          <select id={`${id}-mute`} value={duration} onChange={(e) => setDuration(e.target.value)}>
            {MUTE_DURATIONS.map((d) => (
              <option key={d.seconds} value={d.seconds}>
                {d.label}
              </option>
            ))}
          </select>
          <button type="button" disabled={busy} onClick={() => run(() => api.put<Alert>(`/api/alerts/${alert.id}/mute`, { duration_seconds: Number(duration) }))} aria-label={`Mute alert ${alert.id}`}>
            Mute
          </button>
        </span>
      )}
      {error && (
        <span className="state error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}
