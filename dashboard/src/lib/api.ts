// The REST client: JSON in and out, the JWT from the session, errors as ApiError with the
// server's own plain-words message (docs/api.md: {"error": ..., "field"?: ...}).

export class ApiError extends Error {
  status: number;
  field?: string;
  constructor(status: number, message: string, field?: string) {
    super(message);
    this.status = status;
    this.field = field;
  }
  // The endpoint does not exist on this server (e.g. a feature not deployed yet).
  get missing(): boolean {
    return this.status === 404 || this.status === 405;
  }
}

let token: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setToken(t: string | null) {
  token = t;
}
export function getToken() {
  return token;
}
export function setUnauthorizedHandler(fn: (() => void) | null) {
  onUnauthorized = fn;
}

function describeStatus(status: number): string {
  if (status === 401) return "Your session has ended; please log in again.";
  if (status === 403) return "You are not allowed to do this.";
  if (status === 404) return "Not found on the server.";
  if (status === 429) return "Too many requests; wait a moment and retry.";
  if (status >= 500) return "The server could not answer (status " + status + "); retry shortly.";
  return "Request failed (status " + status + ").";
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = "Bearer " + token;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "Cannot reach the Boing server. Check that it is running.");
  }
  const text = await res.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) {
    const d = data as { error?: string; field?: string } | undefined;
    let msg = d && typeof d.error === "string" ? d.error : describeStatus(res.status);
    if (res.status === 429) {
      const retry = res.headers.get("Retry-After");
      if (retry && !msg.includes("retry")) msg += ` (retry in ${retry} s)`;
    }
    if (res.status === 401 && token && path !== "/api/login" && onUnauthorized) onUnauthorized();
    throw new ApiError(res.status, msg, d?.field);
  }
  return data as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  del: (path: string) => request<void>("DELETE", path),
};

// "a=1&b=2" from an object, leaving out empty values.
export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// Downloads a GET endpoint with the bearer token (an <a href> cannot carry it) as a file.
export async function download(path: string, filename: string): Promise<number> {
  const res = await fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!res.ok) {
    let msg = describeStatus(res.status);
    try {
      const d = await res.json();
      if (d && typeof d.error === "string") msg = d.error;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, msg);
  }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob.size;
}
