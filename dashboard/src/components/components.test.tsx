import { afterEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter } from "react-router-dom";
import { LineChart, BarList } from "./Charts";
import { ErrorBox } from "./States";
import { SnippetTabs } from "./SnippetTabs";
import { NotificationProvider, Bell } from "./Notifications";
import { AlertActions } from "./AlertActions";
import { ApiError } from "../lib/api";
import { snippets } from "../lib/snippets";
import { App } from "../App";
import type { Alert } from "../lib/types";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  localStorage.clear();
});

function jsonResponse(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

// A scripted WebSocket: tests push server messages through FakeWS.last.
class FakeWS {
  static last: FakeWS | null = null;
  static all: FakeWS[] = [];
  url: string;
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(url: string) {
    this.url = url;
    FakeWS.last = this;
    FakeWS.all.push(this);
    setTimeout(() => this.onopen?.(), 0);
  }
  send() {}
  close() {}
  push(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

describe("LineChart", () => {
  it("draws one polyline per series and describes the latest values", () => {
    const { container } = render(
      <LineChart title="Requests per second" times={[1, 2, 3]} series={[{ name: "req/s", color: "#000", values: [1, 5, 2] }]} />,
    );
    const line = container.querySelector("polyline")!;
    expect(line.getAttribute("points")!.split(" ")).toHaveLength(3);
    expect(screen.getByRole("img").getAttribute("aria-label")).toBe("Requests per second: req/s 2");
  });
  it("bar lists show an empty state", () => {
    render(<BarList title="Top IPs" rows={[]} />);
    expect(screen.getByText("No data yet.")).toBeTruthy();
  });
});

describe("ErrorBox", () => {
  it("says a feature is missing when its endpoint answers 404", () => {
    render(<ErrorBox error={new ApiError(404, "not found")} what="Alerts" />);
    expect(screen.getByRole("alert").textContent).toBe("Not available from this server yet: alerts (the endpoint answered 404).");
  });
  it("shows the server's own words otherwise", () => {
    render(<ErrorBox error={new ApiError(400, "name is required")} />);
    expect(screen.getByRole("alert").textContent).toBe("name is required");
  });
});

describe("SnippetTabs", () => {
  it("switches tabs with the arrow keys", () => {
    render(<SnippetTabs items={snippets("http://x:1", "bk_k")} />);
    const node = screen.getByRole("tab", { name: "Node.js (Express)" });
    expect(node.getAttribute("aria-selected")).toBe("true");
    fireEvent.keyDown(node, { key: "ArrowRight" });
    expect(screen.getByRole("tab", { name: "Python (Flask/FastAPI)" }).getAttribute("aria-selected")).toBe("true");
    expect(screen.getByTestId("snippet-python").textContent).toContain('BOING_API_KEY = "bk_k"');
    fireEvent.keyDown(screen.getByRole("tab", { name: "Python (Flask/FastAPI)" }), { key: "End" });
    expect(screen.getByTestId("snippet-curl").textContent).toContain("curl -s");
  });
});

describe("notifications", () => {
  it("toast and unread count for an alert at or above the threshold, none below", async () => {
    vi.stubGlobal("WebSocket", FakeWS);
    localStorage.setItem("boing.notify.min", "high");
    render(
      <MemoryRouter>
        <NotificationProvider enabled>
          <Bell />
        </NotificationProvider>
      </MemoryRouter>,
    );
    await waitFor(() => expect(FakeWS.last?.url).toContain("/ws/alerts"));
    const ws = FakeWS.last!;
    act(() => ws.push({ type: "alert", action: "created", alert: { id: 9, severity: "medium", message: "slow", api_name: "shop", actor: "ip:1" } }));
    expect(screen.queryByTestId("unread-count")).toBeNull();
    act(() => ws.push({ type: "alert", action: "created", alert: { id: 10, severity: "critical", message: "SQL injection", api_name: "shop", actor: "ip:1" } }));
    expect(screen.getByTestId("unread-count").textContent).toBe("1");
    expect(screen.getByRole("status").textContent).toContain("SQL injection");
    fireEvent.click(screen.getByRole("button", { name: "Notifications, 1 unread" }));
    fireEvent.click(screen.getByRole("button", { name: "Mark all read" }));
    expect(screen.queryByTestId("unread-count")).toBeNull();
  });
});

describe("AlertActions", () => {
  it("acknowledges and mutes through the API and reports errors in plain words", async () => {
    const calls: { url: string; method: string; body: unknown }[] = [];
    const base = { id: 5, status: "open", muted: false, muted_until: null } as unknown as Alert;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string, init: RequestInit) => {
        calls.push({ url, method: init.method!, body: JSON.parse(String(init.body)) });
        if (url.endsWith("/mute")) return jsonResponse(403, { error: "not your API" });
        return jsonResponse(200, { ...base, status: "acknowledged" });
      }),
    );
    const onChange = vi.fn();
    render(<AlertActions alert={base} onChange={onChange} />);
    fireEvent.click(screen.getByRole("button", { name: "Acknowledge alert 5" }));
    await waitFor(() => expect(onChange).toHaveBeenCalled());
    expect(calls[0]).toEqual({ url: "/api/alerts/5/ack", method: "POST", body: {} });
    fireEvent.change(screen.getByLabelText("Mute alert 5 for"), { target: { value: "14400" } });
    fireEvent.click(screen.getByRole("button", { name: "Mute alert 5" }));
    await screen.findByText("not your API");
    expect(calls[1]).toEqual({ url: "/api/alerts/5/mute", method: "PUT", body: { duration_seconds: 14400 } });
  });
});

describe("App", () => {
  it("sends a logged-out visitor to the login page, and shows a failed login's reason", async () => {
    vi.stubGlobal("WebSocket", FakeWS);
    vi.stubGlobal("fetch", vi.fn(async () => jsonResponse(401, { error: "wrong user name or password" })));
    render(
      <MemoryRouter initialEntries={["/alerts"]}>
        <App />
      </MemoryRouter>,
    );
    expect(screen.getByRole("heading", { name: "Log in to Boing" })).toBeTruthy();
    fireEvent.change(screen.getByLabelText("User name"), { target: { value: "eve" } });
    fireEvent.change(screen.getByLabelText("Password"), { target: { value: "nope-nope" } });
    fireEvent.click(screen.getByRole("button", { name: "Log in" }));
    expect((await screen.findByRole("alert")).textContent).toBe("wrong user name or password");
  });
  it("hides admin pages from users and shows them to admins", async () => {
    vi.stubGlobal("WebSocket", FakeWS);
    vi.stubGlobal("fetch", vi.fn(async () => jsonResponse(200, { apis: [], logs: [], detectors: [] })));
    const session = (role: string) =>
      JSON.stringify({ token: "t", expires_at: Date.now() / 1000 + 3600, user: { id: 1, username: "u", role, email: "", disabled: false, created_at: 0 } });
    localStorage.setItem("boing.session", session("user"));
    const { unmount } = render(
      <MemoryRouter initialEntries={["/audit"]}>
        <App />
      </MemoryRouter>,
    );
    expect(screen.queryByRole("link", { name: "Audit log" })).toBeNull();
    expect(screen.getByRole("alert").textContent).toContain("administrators only");
    unmount();
    localStorage.setItem("boing.session", session("admin"));
    render(
      <MemoryRouter initialEntries={["/"]}>
        <App />
      </MemoryRouter>,
    );
    expect(screen.getByRole("link", { name: "Audit log" })).toBeTruthy();
    expect(screen.getByRole("link", { name: "Agents" })).toBeTruthy();
    // The DB-IP licence (CC BY 4.0) asks for this link where its results are used.
    expect(screen.getByRole("link", { name: "IP Geolocation by DB-IP" }).getAttribute("href")).toBe("https://db-ip.com");
  });
});
