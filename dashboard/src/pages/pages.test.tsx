// Page behaviour with scripted WebSocket messages (the shapes of docs/api.md) and a stubbed fetch.
import { afterEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter } from "react-router-dom";
import { LivePage } from "./Live";
import { OverviewPage } from "./Overview";
import { AlertsPage } from "./Alerts";

class FakeWS {
  static all: FakeWS[] = [];
  url: string;
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(url: string) {
    this.url = url;
    FakeWS.all.push(this);
    setTimeout(() => this.onopen?.(), 0);
  }
  send() {}
  close() {}
  push(msg: unknown) {
    act(() => this.onmessage?.({ data: JSON.stringify(msg) }));
  }
  static find(path: string) {
    return FakeWS.all.filter((w) => w.url.includes(path)).pop()!;
  }
}

function stubFetch(routes: Record<string, unknown>) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      const path = url.split("?")[0];
      if (path in routes) return new Response(JSON.stringify(routes[path]), { status: 200 });
      return new Response(JSON.stringify({ error: "not found" }), { status: 404 });
    }),
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  FakeWS.all = [];
});

const ev = (id: number, status = 200, path = `/items/${id}`) => ({
  type: "event",
  event: { id, api_id: 1, timestamp: 1700000000 + id, method: "GET", path, endpoint_template: "/items/{id}", status_code: status, latency_ms: 4, client_ip: "192.0.2.1", identity: "", user_agent: "ua" },
});

describe("LivePage", () => {
  it("shows events and findings newest first, filters them, and holds them while paused", async () => {
    vi.stubGlobal("WebSocket", FakeWS);
    stubFetch({ "/api/apis": { apis: [{ id: 1, name: "shop" }] } });
    render(
      <MemoryRouter>
        <LivePage />
      </MemoryRouter>,
    );
    await screen.findByText("activity stream: live");
    const ws = FakeWS.find("/ws/stream");
    expect(ws.url).toContain("kinds=events%2Cfindings");
    expect(screen.getByText(/Waiting for traffic/)).toBeTruthy();
    ws.push(ev(1));
    ws.push(ev(2, 503));
    ws.push({ type: "finding", finding: { id: 7, api_id: 1, timestamp: 1700000003, detector: "sqli", severity: "high", method: "GET", endpoint_template: "/search", client_ip: "203.0.113.9", message: "SQL injection in q" } });
    const rows = () => screen.getByTestId("live-table").querySelectorAll("tbody tr");
    expect(rows()).toHaveLength(3);
    expect(rows()[0].textContent).toContain("SQL injection in q");
    expect(rows()[1].textContent).toContain("503");
    fireEvent.change(screen.getByLabelText("Status"), { target: { value: "5" } });
    expect(rows()).toHaveLength(1);
    fireEvent.change(screen.getByLabelText("Status"), { target: { value: "" } });
    fireEvent.click(screen.getByLabelText("Findings only"));
    expect(rows()).toHaveLength(1);
    fireEvent.click(screen.getByLabelText("Findings only"));

    fireEvent.click(screen.getByRole("button", { name: "Pause" }));
    ws.push(ev(3));
    ws.push(ev(4));
    expect(rows()).toHaveLength(3);
    expect(screen.getByText("2 new while paused")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Resume" }));
    expect(rows()).toHaveLength(5);
    expect(rows()[0].textContent).toContain("/items/4");
  });
});

describe("OverviewPage", () => {
  it("charts the metrics ticks of /ws/metrics and sums the top lists", async () => {
    vi.stubGlobal("WebSocket", FakeWS);
    stubFetch({
      "/api/apis": { apis: [] },
      "/api/metrics": { from: 0, to: 0, bucket: 60, apis: [] },
      "/api/alerts/summary": { open_by_severity: { info: 0, low: 0, medium: 1, high: 2, critical: 0 }, open: 3, acknowledged: 1 },
    });
    render(
      <MemoryRouter>
        <OverviewPage />
      </MemoryRouter>,
    );
    await screen.findByText("metrics stream: live");
    await screen.findByText("open alerts");
    const ws = FakeWS.find("/ws/metrics");
    const tick = (ts: number, requests: number, ip: string) => ({
      type: "metrics",
      ts,
      requests,
      errors: 1,
      error_rate: 1 / requests,
      latency_ms: { p50: 3, p95: 9, p99: 20 },
      top_ips: [{ ip, count: requests }],
      top_endpoints: [{ endpoint: "/a", count: requests }],
      alerts_open_by_severity: { high: 2, medium: 1 },
    });
    ws.push(tick(100, 10, "192.0.2.1"));
    ws.push(tick(101, 40, "192.0.2.2"));
    expect(screen.getByRole("img", { name: /^Requests per second/ }).getAttribute("aria-label")).toBe("Requests per second: req/s 40");
    expect(screen.getByRole("img", { name: /^Latency percentiles/ }).getAttribute("aria-label")).toBe("Latency percentiles: p50 3 ms, p95 9 ms, p99 20 ms");
    expect(screen.getByRole("img", { name: /^Error rate/ }).getAttribute("aria-label")).toBe("Error rate: errors 2.5%");
    const ipRows = screen.getByText("Top client IPs (last 2 min)").closest("figure")!.querySelectorAll("tbody tr");
    expect([...ipRows].map((r) => r.textContent)).toEqual(["192.0.2.240", "192.0.2.110"]);
    expect(screen.getByText("No requests in the last hour. Create an API and send events to see them here.")).toBeTruthy();
  });

  it("fetches the last hour and the alert counts again while the page stays open", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    vi.stubGlobal("WebSocket", FakeWS);
    let metrics: unknown = { from: 0, to: 0, bucket: 60, apis: [] };
    let summary: unknown = { open_by_severity: {}, open: 0, acknowledged: 0 };
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        const path = url.split("?")[0];
        const body = path === "/api/metrics" ? metrics : path === "/api/alerts/summary" ? summary : { apis: [] };
        return new Response(JSON.stringify(body), { status: 200 });
      }),
    );
    render(
      <MemoryRouter>
        <OverviewPage />
      </MemoryRouter>,
    );
    await screen.findByText(/No requests in the last hour/);
    expect(screen.getByText("open alerts").closest("span")!.querySelector("b")!.textContent).toBe("0");
    const bucket = { ts: 1700000000, requests: 42, errors: 2, error_rate: 2 / 42, p50: 3, p95: 9, p99: 20 };
    metrics = { from: 0, to: 0, bucket: 60, apis: [{ api_id: 1, name: "shop", totals: { ...bucket }, buckets: [bucket], top_ips: [{ ip: "192.0.2.9", count: 42 }], top_endpoints: [{ endpoint: "/a", count: 42 }] }] };
    summary = { open_by_severity: { high: 5 }, open: 5, acknowledged: 0 };
    await act(async () => {
      await vi.advanceTimersByTimeAsync(15_000);
    });
    expect(screen.getByText("open alerts").closest("span")!.querySelector("b")!.textContent).toBe("5");
    expect(screen.getByTestId("hour-requests").textContent).toBe("0"); // not yet a minute
    await act(async () => {
      await vi.advanceTimersByTimeAsync(45_000);
    });
    expect(screen.getByTestId("hour-requests").textContent).toBe("42");
    expect(screen.queryByText(/No requests in the last hour/)).toBeNull();
    vi.useRealTimers();
  });

  it("says so when the metrics stream is not offered", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    // A server without the stream: every connection closes before it opens.
    class Refused {
      onopen: (() => void) | null = null;
      onmessage: ((e: { data: string }) => void) | null = null;
      onclose: (() => void) | null = null;
      constructor() {
        setTimeout(() => this.onclose?.(), 0);
      }
      close() {}
    }
    vi.stubGlobal("WebSocket", Refused);
    stubFetch({ "/api/apis": { apis: [] }, "/api/metrics": { apis: [] } });
    render(
      <MemoryRouter>
        <OverviewPage />
      </MemoryRouter>,
    );
    await act(async () => {
      await vi.advanceTimersByTimeAsync(10000);
    });
    expect(screen.getByTestId("metrics-state").textContent).toContain("not available from this server");
    expect(screen.getByRole("alert").textContent).toContain("Not available from this server yet: the alert summary");
    vi.useRealTimers();
  });
});

describe("AlertsPage", () => {
  it("lists alerts and updates a row from /ws/alerts in place", async () => {
    vi.stubGlobal("WebSocket", FakeWS);
    const alert = { id: 3, severity: "high", status: "open", detector: "sqli", endpoint_template: "/search", api_name: "shop", actor: "ip:203.0.113.9", count: 2, last_seen: 1700000000, message: "SQL injection in q", muted: false, muted_until: null };
    stubFetch({ "/api/apis": { apis: [] }, "/api/alerts": { alerts: [alert], next_cursor: null } });
    render(
      <MemoryRouter>
        <AlertsPage />
      </MemoryRouter>,
    );
    await screen.findByText("SQL injection in q");
    await waitFor(() => expect(FakeWS.find("/ws/alerts")).toBeTruthy());
    const ws = FakeWS.find("/ws/alerts");
    await waitFor(() => expect(screen.getByRole("button", { name: "Acknowledge alert 3" })).toBeTruthy());
    ws.push({ type: "alert", action: "acknowledged", alert: { ...alert, status: "acknowledged", count: 5 } });
    const row = screen.getByTestId("alerts-table").querySelector("tbody tr")!;
    expect(row.textContent).toContain("acknowledged");
    expect(row.textContent).toContain("5");
    expect(screen.queryByRole("button", { name: "Acknowledge alert 3" })).toBeNull();
  });
});
