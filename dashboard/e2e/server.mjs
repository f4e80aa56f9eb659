// Starts the real boing-server for the end-to-end tests: a temp data dir (SQLite), an admin from
// ADMIN_USERNAME/ADMIN_PASSWORD, the built dashboard as DASHBOARD_DIR, a port chosen at run time.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const ADMIN = { username: "admin1", password: "Adm1n-password-123" };

export async function startServer({ binary, dashboardDir, env = {} }) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "boing-e2e-"));
  const childEnv = { ...process.env };
  for (const k of Object.keys(childEnv)) {
    if (/^(DB_|JWT_|ADMIN_|EVENT_|LOG_)/.test(k) || ["ENCRYPTION_KEY", "BOING_ENV", "CORS_ORIGINS", "LISTEN", "DATA_DIR", "DASHBOARD_DIR"].includes(k)) delete childEnv[k];
  }
  Object.assign(childEnv, {
    ADMIN_USERNAME: ADMIN.username,
    ADMIN_PASSWORD: ADMIN.password,
    DASHBOARD_DIR: dashboardDir,
    AUTH_RATE_LIMIT_PER_MINUTE: "100000",
    API_RATE_LIMIT_PER_MINUTE: "1000000",
    THREADS: "2",
    LOG_FILE: path.join(dataDir, "server.log"),
    ...env,
  });
  const proc = spawn(binary, ["--listen", "127.0.0.1:0", "--data-dir", dataDir], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not start in 30 s:\n" + output.slice(-4000))), 30000);
    const onData = (d) => {
      output += d.toString();
      const m = output.match(/"listening".*?"port":(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${output.slice(-4000)}`));
    });
  });
  proc.removeAllListeners("exit");
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    port,
    dataDir,
    output: () => output,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => {
          const t = setTimeout(() => {
            proc.kill("SIGKILL");
            r();
          }, 15000);
          proc.on("exit", () => {
            clearTimeout(t);
            r();
          });
        });
      }
      if (process.env.BOING_E2E_KEEP !== "1") fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// Plain REST calls for setting up and checking (the browser does the rest).
export function client(base) {
  const call = async (method, p, body, token, headers = {}) => {
    const h = { ...headers };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (token) h.Authorization = "Bearer " + token;
    const r = await fetch(base + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: r.status, json, text, headers: r.headers };
  };
  return {
    call,
    async login(username, password) {
      const r = await call("POST", "/api/login", { username, password });
      if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
      return r.json.token;
    },
    async logs(token, params = {}) {
      const q = new URLSearchParams(params).toString();
      const r = await call("GET", "/api/logs" + (q ? "?" + q : ""), undefined, token);
      if (r.status !== 200) throw new Error(`logs: ${r.status} ${r.text}`);
      return r.json.logs;
    },
    async ingest(event) {
      const r = await call("POST", "/api/ingest", event);
      if (r.status !== 200) throw new Error(`ingest: ${r.status} ${r.text}`);
      return r.json;
    },
  };
}
