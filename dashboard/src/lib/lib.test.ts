import { describe, expect, it } from "vitest";
import { snippets, ingestUrl } from "./snippets";
import { query } from "./api";
import { formatTime, fromLocalInput, relative } from "./time";
import { shouldNotify } from "../components/Notifications";
import { pushTick, sumTop } from "../pages/Overview";
import { rowMatches, type Row } from "../pages/Live";
import type { Alert, MetricsTick } from "./types";

describe("snippets", () => {
  const s = snippets("http://127.0.0.1:8123/", "bk_abc'def");
  it("fill in this server's ingest URL and the key, for Node.js, Python and curl", () => {
    expect(s.map((x) => x.id)).toEqual(["node", "python", "curl"]);
    expect(ingestUrl("http://h:1/")).toBe("http://h:1/api/ingest");
    for (const x of s) expect(x.code).toContain("http://127.0.0.1:8123/api/ingest");
    expect(s[0].code).toContain("api_key: 'bk_abc\\'def'");
    expect(s[1].code).toContain('BOING_API_KEY = "bk_abc\'def"');
    expect(s[2].code).toContain(`"api_key":"bk_abc'\\''def"`);
  });
  it("the Node.js snippet is valid JavaScript with the product's middleware", () => {
    expect(() => new Function("require", s[0].code)).not.toThrow();
    expect(s[0].code).toContain("app.use(boingMiddleware);");
    expect(s[0].code).toContain("latency_ms: Date.now() - start");
  });
});

describe("query", () => {
  it("drops empty values and encodes the rest", () => {
    expect(query({ a: "", b: undefined, c: null, d: 0, e: "x y&z" })).toBe("?d=0&e=x+y%26z");
    expect(query({})).toBe("");
  });
});

describe("time", () => {
  it("formats in the browser zone and converts datetime-local", () => {
    expect(formatTime(0)).toBe("—");
    expect(formatTime(1700000000)).toBe(
      new Date(1700000000000).toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    );
    expect(fromLocalInput("2024-01-02T03:04")).toBe(Math.floor(new Date("2024-01-02T03:04").getTime() / 1000));
    expect(fromLocalInput("")).toBeUndefined();
    expect(relative(90, 100)).toBe("10 s ago");
    expect(relative(0)).toBe("never");
  });
});

const alert = (severity: Alert["severity"], muted = false) => ({ id: 1, severity, muted, message: "m" }) as unknown as Alert;

describe("shouldNotify", () => {
  it("notifies new, unmuted alerts at or above the chosen severity only", () => {
    expect(shouldNotify({ type: "alert", action: "created", alert: alert("high") }, "medium")).not.toBeNull();
    expect(shouldNotify({ type: "alert", action: "created", alert: alert("medium") }, "medium")).not.toBeNull();
    expect(shouldNotify({ type: "alert", action: "created", alert: alert("low") }, "medium")).toBeNull();
    expect(shouldNotify({ type: "alert", action: "updated", alert: alert("critical") }, "info")).toBeNull();
    expect(shouldNotify({ type: "alert", action: "created", alert: alert("critical", true) }, "info")).toBeNull();
    expect(shouldNotify({ type: "metrics" }, "info")).toBeNull();
    expect(shouldNotify(null, "info")).toBeNull();
  });
});

const tick = (ts: number, ip: string, n: number): MetricsTick => ({
  type: "metrics",
  ts,
  requests: n,
  errors: 0,
  error_rate: 0,
  latency_ms: { p50: 1, p95: 2, p99: 3 },
  top_ips: [{ ip, count: n }],
  top_endpoints: [{ endpoint: "/a", count: n }],
  alerts_open_by_severity: {},
});

describe("live metrics", () => {
  it("keeps a bounded window and sums the top lists over it", () => {
    let w: MetricsTick[] = [];
    for (let i = 0; i < 10; i++) w = pushTick(w, tick(i, i % 2 ? "1.1.1.1" : "2.2.2.2", i), 4);
    expect(w.map((t) => t.ts)).toEqual([6, 7, 8, 9]);
    expect(sumTop(w, (t) => t.top_ips, "ip")).toEqual([
      { label: "1.1.1.1", value: 16 },
      { label: "2.2.2.2", value: 14 },
    ]);
  });
});

describe("live stream filters", () => {
  const ev: Row = {
    kind: "event",
    key: "e1",
    event: { id: 1, api_id: 1, timestamp: 1, method: "GET", path: "/users/7", endpoint_template: "/users/{id}", status_code: 404, latency_ms: 3, client_ip: "10.0.0.9", identity: "", user_agent: "curl" },
  };
  const f = { text: "", method: "", status: "", findingsOnly: false };
  it("filter by text, method, status class and kind", () => {
    expect(rowMatches(ev, f)).toBe(true);
    expect(rowMatches(ev, { ...f, text: "10.0.0" })).toBe(true);
    expect(rowMatches(ev, { ...f, text: "/orders" })).toBe(false);
    expect(rowMatches(ev, { ...f, method: "POST" })).toBe(false);
    expect(rowMatches(ev, { ...f, status: "4" })).toBe(true);
    expect(rowMatches(ev, { ...f, status: "2" })).toBe(false);
    expect(rowMatches(ev, { ...f, findingsOnly: true })).toBe(false);
  });
});
