// WebSocket streams (/ws/alerts, /ws/stream, /ws/metrics): the JWT goes in ?token=, reconnects
// with backoff, and reports a stream the server does not offer (closed before it ever opened) as
// "unavailable" so pages can say so instead of spinning.
import { useEffect, useRef, useState } from "react";
import { getToken } from "./api";

export type StreamState = "connecting" | "open" | "reconnecting" | "unavailable" | "closed";

export function wsUrl(path: string, params: Record<string, string | undefined> = {}): string {
  const loc = window.location;
  const u = new URL(path, loc.href);
  u.protocol = loc.protocol === "https:" ? "wss:" : "ws:";
  const t = getToken();
  if (t) u.searchParams.set("token", t);
  for (const [k, v] of Object.entries(params)) if (v) u.searchParams.set(k, v);
  return u.toString();
}

// Calls onMessage with each parsed JSON message. `key` changes reconnect (e.g. a new api_id).
export function useStream(
  path: string | null,
  params: Record<string, string | undefined>,
  onMessage: (msg: unknown) => void,
): StreamState {
  const [state, setState] = useState<StreamState>("connecting");
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const key = path ? wsUrl(path, params) : "";

  useEffect(() => {
    if (!key) {
      setState("closed");
      return;
    }
    let ws: WebSocket | null = null;
    let stopped = false;
    let everOpened = false;
    let failures = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const connect = () => {
      if (stopped) return;
      setState(everOpened ? "reconnecting" : "connecting");
      try {
        ws = new WebSocket(key);
      } catch {
        setState("unavailable");
        return;
      }
      ws.onopen = () => {
        everOpened = true;
        failures = 0;
        setState("open");
      };
      ws.onmessage = (e) => {
        if (typeof e.data !== "string") return;
        try {
          handler.current(JSON.parse(e.data));
        } catch {
          /* a message that is not JSON is ignored */
        }
      };
      ws.onclose = () => {
        ws = null;
        if (stopped) return;
        failures++;
        // Never opened three times in a row: the server does not offer this stream.
        if (!everOpened && failures >= 3) {
          setState("unavailable");
          timer = setTimeout(connect, 30000);
          return;
        }
        setState(everOpened ? "reconnecting" : "connecting");
        timer = setTimeout(connect, Math.min(10000, 500 * 2 ** Math.min(failures, 5)));
      };
    };
    connect();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (ws) ws.close();
    };
  }, [key]);
  return state;
}

export function streamStateText(s: StreamState, what: string): string {
  switch (s) {
    case "open":
      return `${what}: live`;
    case "connecting":
      return `${what}: connecting…`;
    case "reconnecting":
      return `${what}: connection lost, reconnecting…`;
    case "unavailable":
      return `${what} is not available from this server (the stream could not be opened).`;
    default:
      return `${what}: closed`;
  }
}
