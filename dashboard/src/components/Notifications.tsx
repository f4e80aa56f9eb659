// In-app notifications: /ws/alerts feeds a toast for each new alert at or above the chosen
// severity, and the bell counts the unread ones.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { Link } from "react-router-dom";
import { useStream, type StreamState } from "../lib/ws";
import { SEVERITIES, severityRank, type Alert, type Severity } from "../lib/types";
import { formatTime } from "../lib/time";
import { SeverityBadge } from "./Severity";

export interface Notice {
  key: string;
  alert: Alert;
  at: number;
  read: boolean;
}

interface NotifyValue {
  notices: Notice[];
  unread: number;
  minSeverity: Severity;
  setMinSeverity: (s: Severity) => void;
  markAllRead: () => void;
  streamState: StreamState;
}

const NotifyContext = createContext<NotifyValue | null>(null);
const MIN_KEY = "boing.notify.min";
const MAX_NOTICES = 50;
const TOAST_MS = 10000;

export function shouldNotify(msg: unknown, min: Severity): Alert | null {
  const m = msg as { type?: string; action?: string; alert?: Alert };
  if (!m || m.type !== "alert" || m.action !== "created" || !m.alert) return null;
  if (m.alert.muted) return null;
  if (severityRank(m.alert.severity) < severityRank(min)) return null;
  return m.alert;
}

export function NotificationProvider({ enabled, children }: { enabled: boolean; children: ReactNode }) {
  const [notices, setNotices] = useState<Notice[]>([]);
  const [toasts, setToasts] = useState<Notice[]>([]);
  const [minSeverity, setMin] = useState<Severity>(() => {
    const v = localStorage.getItem(MIN_KEY);
    return (SEVERITIES as readonly string[]).includes(v ?? "") ? (v as Severity) : "medium";
  });
  const minRef = useRef(minSeverity);
  minRef.current = minSeverity;

  const dismiss = useCallback((key: string) => setToasts((t) => t.filter((n) => n.key !== key)), []);

  const onMessage = useCallback(
    (msg: unknown) => {
      const alert = shouldNotify(msg, minRef.current);
      if (!alert) return;
      const n: Notice = { key: `${alert.id}-${Date.now()}`, alert, at: Date.now() / 1000, read: false };
      setNotices((prev) => [n, ...prev].slice(0, MAX_NOTICES));
      setToasts((prev) => [n, ...prev].slice(0, 5));
      setTimeout(() => dismiss(n.key), TOAST_MS);
    },
    [dismiss],
  );
  const streamState = useStream(enabled ? "/ws/alerts" : null, {}, onMessage);

  const value = useMemo<NotifyValue>(
    () => ({
      notices,
      unread: notices.filter((n) => !n.read).length,
      minSeverity,
      setMinSeverity: (s) => {
        localStorage.setItem(MIN_KEY, s);
        setMin(s);
      },
      markAllRead: () => setNotices((prev) => prev.map((n) => ({ ...n, read: true }))),
      streamState,
    }),
    [notices, minSeverity, streamState],
  );

  return (
    <NotifyContext.Provider value={value}>
      {children}
      <div className="toasts" role="region" aria-label="New alert notifications">
        <div aria-live="polite">
          {toasts.map((t) => (
            <div key={t.key} className={`toast sev-border-${t.alert.severity}`} role="status">
              <div>
                <SeverityBadge severity={t.alert.severity} /> <strong>New alert</strong>: {t.alert.message || t.alert.detector}
                <div className="muted">
                  {t.alert.api_name} · {t.alert.actor}
                </div>
              </div>
              <div className="toast-actions">
                <Link to={`/alerts/${t.alert.id}`} onClick={() => dismiss(t.key)}>
                  View
                </Link>
                <button type="button" onClick={() => dismiss(t.key)}>
                  Dismiss
                </button>
              </div>
            </div>
          ))}
        </div>
      </div>
    </NotifyContext.Provider>
  );
}

export function useNotifications(): NotifyValue {
  const v = useContext(NotifyContext);
  if (!v) throw new Error("useNotifications outside NotificationProvider");
  return v;
}

export function Bell() {
  const { notices, unread, markAllRead, minSeverity, setMinSeverity, streamState } = useNotifications();
  const [open, setOpen] = useState(false);
  const panel = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        setOpen(false);
        button.current?.focus();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [open]);
  const label = unread === 0 ? "Notifications, none unread" : `Notifications, ${unread} unread`;
  return (
    <div className="bell">
      <button
        ref={button}
        type="button"
        aria-label={label}
        aria-expanded={open}
        aria-controls="notification-panel"
        onClick={() => setOpen((o) => !o)}
      >
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
          <path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.5-2.5h-5A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z" />
        </svg>
        {unread > 0 && (
          <span className="badge" data-testid="unread-count">
            {unread}
          </span>
        )}
      </button>
      {open && (
        <div id="notification-panel" className="bell-panel" ref={panel} role="dialog" aria-label="Notifications">
          <div className="bell-head">
            <label htmlFor="notify-min">
              Notify at
              <select id="notify-min" value={minSeverity} onChange={(e) => setMinSeverity(e.target.value as Severity)}>
                {SEVERITIES.map((s) => (
                  <option key={s} value={s}>
                    {s} or above
                  </option>
                ))}
              </select>
            </label>
            <button type="button" onClick={markAllRead} disabled={unread === 0}>
              Mark all read
            </button>
          </div>
          <p>
            <Link to="/notifications" onClick={() => setOpen(false)}>
              Notification settings and mute rules
            </Link>
          </p>
          {streamState === "unavailable" && <p className="state error">Alert notifications are not available from this server.</p>}
          {notices.length === 0 ? (
            <p className="state empty">No notifications since you opened the dashboard.</p>
          ) : (
            <ul>
              {notices.map((n) => (
                <li key={n.key} className={n.read ? "read" : "unread"}>
                  <SeverityBadge severity={n.alert.severity} />{" "}
                  <Link to={`/alerts/${n.alert.id}`} onClick={() => setOpen(false)}>
                    {n.alert.message || n.alert.detector}
                  </Link>
                  <div className="muted">{formatTime(n.at)}</div>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
