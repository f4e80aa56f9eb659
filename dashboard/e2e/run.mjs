// End-to-end tests of the dashboard: Debian's chromium (headless, driven by playwright-core; no
// browser download) against the real boing-server with a real SQLite database.
//
//   node e2e/run.mjs core   register, log in, APIs and snippets (the Node.js one run for real),
//                           ingest, logs and CSV export, role-awareness, every page through
//                           axe-core, a keyboard-only flow, screenshots
//   node e2e/run.mjs live   needs the alerts endpoints and streams (docs/api.md "Alerts"): live
//                           charts, live stream with pause, an SQL-injection alert, its toast and
//                           bell count, acknowledge and mute, the evidence view
//
// Environment: BOING_SERVER_BIN (default ../build/server/api/boing-server), BOING_DASHBOARD_DIST
// (default dist/), BOING_E2E_ARTIFACTS (screenshots; default ../build/dashboard-artifacts),
// CHROMIUM (default /usr/bin/chromium), BOING_E2E_KEEP=1 keeps the server's data dir.
// Prints one line per test and closes with "N passed, N failed, N skipped".
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { ADMIN, client, startServer } from "./server.mjs";

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const DASH = path.dirname(HERE);
const ROOT = path.dirname(DASH);
const BINARY = process.env.BOING_SERVER_BIN || path.join(ROOT, "build/server/api/boing-server");
const DIST = process.env.BOING_DASHBOARD_DIST || path.join(DASH, "dist");
const ARTIFACTS = process.env.BOING_E2E_ARTIFACTS || path.join(ROOT, "build/dashboard-artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const AXE_SOURCE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const TZ = "Asia/Kolkata"; // not the machine's zone: times must follow the browser's
const PASSWORD = "alice-password-1";

const group = process.argv[2] || "core";
if (!["core", "live"].includes(group)) {
  console.error("usage: node e2e/run.mjs core|live");
  process.exit(2);
}

// --- tiny runner ---------------------------------------------------------------------------
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
class Skip extends Error {}
function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(fn, what, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
    await sleep(200);
  }
}

// --- shared state --------------------------------------------------------------------------
let server, rest, browser;
const S = {}; // facts later tests build on
const axeReport = [];

async function newContext(extra = {}) {
  const ctx = await browser.newContext({
    baseURL: server.base,
    timezoneId: TZ,
    locale: "en-US",
    viewport: { width: 1366, height: 860 },
    acceptDownloads: true,
    ...extra,
  });
  ctx.setDefaultTimeout(10000);
  return ctx;
}

// Logs in through the form.
async function uiLogin(page, username, password) {
  await page.goto("/login");
  await page.getByLabel("User name").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

// axe-core on the page as it is: no serious or critical violation; then a screenshot.
async function checkPage(page, name) {
  await page.locator("h1").first().waitFor();
  await page.waitForFunction(() => !document.querySelector(".state.loading"), null, { timeout: 10000 }).catch(() => {});
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  axeReport.push({ page: name, violations: result });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${group}-${name}.png`), fullPage: true });
  assert(bad.length === 0, `axe on ${name}: ${JSON.stringify(bad, null, 1)}`);
}

function rawGet(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
  });
}

// --- core ----------------------------------------------------------------------------------
if (group === "core") {
  test("the server serves the dashboard at / with SPA routing", async () => {
    const index = await rest.call("GET", "/");
    assert(index.status === 200 && index.text.includes('<div id="root">'), "index.html at /");
    assert(index.headers.get("cache-control") === "no-cache", "index.html is revalidated");
    const deep = await rest.call("GET", "/alerts/123");
    assert(deep.status === 200 && deep.text === index.text, "a client route gets index.html");
    const asset = index.text.match(/src="(\/assets\/[^"]+\.js)"/)[1];
    const js = await rest.call("GET", asset);
    assert(js.status === 200, "the hashed script is served");
    assert(js.headers.get("content-type").startsWith("text/javascript"), "script content type");
    assert(js.headers.get("cache-control").includes("immutable"), "hashed assets are cached for good");
    const api404 = await rest.call("GET", "/api/no-such-thing");
    assert(api404.status === 404 && api404.json && api404.json.error, "unknown /api path is a JSON 404");
    // Sent as is (fetch would normalise the dots away).
    for (const p of ["/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd", "/.%2e/.%2e/etc/hostname"]) {
      const r = await rawGet(server.port, p);
      assert(r.status === 404 && !r.body.includes("root:"), `no path traversal with ${p}: ${r.status}`);
    }
  });

  test("register a user through the form, log out, log in again", async () => {
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto("/register");
    await checkPage(page, "register");
    await page.getByLabel("User name").fill("alice");
    await page.getByLabel("Email (optional)").fill("alice@example.com");
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: "Create account" }).click();
    const err = await page.getByRole("alert").textContent();
    assert(/password/i.test(err), `a weak password is refused in plain words (${err})`);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    assert((await page.locator(".who").textContent()).includes("alice (user)"), "logged in as alice, a user");
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: "Log in to Boing" }).waitFor();
    await checkPage(page, "login");
    await page.getByLabel("User name").fill("alice");
    await page.getByLabel("Password").fill("wrong-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").waitFor();
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    S.alice = ctx;
    S.alicePage = page;
    S.aliceToken = await rest.login("alice", PASSWORD);
  });

  test("create an API: the ingest key is shown once with the snippets filled in", async () => {
    const page = S.alicePage;
    await S.alice.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.base });
    await page.getByRole("link", { name: "APIs" }).click();
    await page.getByText("No APIs yet").waitFor();
    await page.getByLabel("Name", { exact: true }).fill("shop");
    await page.getByRole("button", { name: "Create API" }).click();
    const key = (await page.getByTestId("ingest-key").textContent()).trim();
    assert(/^bk_/.test(key), `an ingest key is shown (${key})`);
    await checkPage(page, "apis-key-shown");
    // Copy the Node.js snippet with its button, as a person would.
    await page.getByRole("button", { name: "Copy Node.js (Express) snippet" }).click();
    await page.getByText("Node.js (Express) snippet copied.").waitFor();
    const snippet = await page.evaluate(() => navigator.clipboard.readText());
    assert(snippet.includes(`api_key: '${key}'`) && snippet.includes(`${server.base}/api/ingest`), "the snippet has the key and this server's URL");
    await page.getByRole("tab", { name: "Python (Flask/FastAPI)" }).click();
    const py = await page.getByTestId("snippet-python").textContent();
    assert(py.includes(`BOING_API_KEY = "${key}"`), "the Python snippet has the key");
    await page.getByRole("tab", { name: "curl" }).click();
    S.curl = await page.getByTestId("snippet-curl").textContent();
    await page.getByRole("button", { name: "I have stored the key" }).click();
    await page.getByTestId("apis-table").getByText("shop").waitFor();
    assert((await page.getByTestId("ingest-key").count()) === 0, "the key is gone once dismissed");
    assert(!(await page.content()).includes(key), "the key is nowhere on the page any more");
    S.key = key;
    S.nodeSnippet = snippet;
    const apis = (await rest.call("GET", "/api/apis", undefined, S.aliceToken)).json.apis;
    S.apiId = apis[0].id;
  });

  test("the copied Node.js snippet runs for real with node and its events arrive", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "boing-snippet-"));
    const file = path.join(dir, "app.js");
    // The snippet as copied, then a route, a listener and one request to it.
    fs.writeFileSync(
      file,
      S.nodeSnippet +
        `
const http = require('http');
app.get('/hello-from-snippet', (req, res) => res.json({ ok: true }));
const server = app.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  http.get({ host: '127.0.0.1', port, path: '/hello-from-snippet', agent: false,
             headers: { 'Authorization': 'Bearer caller-secret-e2e', 'User-Agent': 'snippet-e2e' } }, (res) => {
    res.resume();
    res.on('end', () => setTimeout(() => server.close(), 300));
  });
});
`,
    );
    const proc = spawn(process.execPath, [file], { cwd: dir, env: { ...process.env, NODE_PATH: path.join(DASH, "node_modules") }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const code = await new Promise((r) => {
      const t = setTimeout(() => {
        proc.kill("SIGKILL");
        r("timeout");
      }, 20000);
      proc.on("exit", (c) => {
        clearTimeout(t);
        r(c);
      });
    });
    fs.rmSync(dir, { recursive: true, force: true });
    assert(code === 0, `the snippet's app exits cleanly (${code}): ${out}`);
    const rows = await eventually(async () => {
      const r = await rest.logs(S.aliceToken, { endpoint: "/hello-from-snippet" });
      return r.length ? r : null;
    }, "the snippet's event in /api/logs");
    const e = rows[0];
    assert(e.method === "GET" && e.status_code === 200 && e.api_id === S.apiId, "method, status and API are right");
    assert(!JSON.stringify(e).includes("caller-secret-e2e"), "the caller's bearer token is not stored");
    assert(e.identity && e.identity.length > 0, "an identity hash replaces it");
  });

  test("the curl snippet runs with bash and its event arrives", async () => {
    const r = await new Promise((resolve) => {
      const p = spawn("bash", ["-c", S.curl], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      p.stdout.on("data", (d) => (out += d));
      p.stderr.on("data", (d) => (out += d));
      p.on("exit", (c) => resolve({ c, out }));
    });
    assert(r.c === 0 && r.out.includes('"accepted"'), `curl snippet accepted: ${r.out}`);
  });

  test("events sent through /api/ingest appear on the logs page, with times in the browser's zone", async () => {
    const t0 = Math.floor(Date.now() / 1000) - 120;
    const N = 25;
    for (let i = 0; i < N; i++) {
      await rest.ingest({
        api_key: S.key,
        timestamp: t0 + i,
        method: i % 5 === 0 ? "POST" : "GET",
        endpoint: `/orders/${1000 + i}`,
        client_ip: `198.51.100.${i % 4}`,
        status_code: i % 7 === 0 ? 500 : 200,
        latency_ms: 10 + i,
        headers: { "User-Agent": "e2e" },
      });
    }
    S.t0 = t0;
    S.orders = N;
    const page = S.alicePage;
    await page.getByRole("link", { name: "Logs" }).click();
    await page.getByTestId("logs-table").waitFor();
    await page.getByLabel("Endpoint (end with * for a prefix)").fill("/orders/*");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await eventually(async () => (await page.getByTestId("logs-table").locator("tbody tr").count()) === N, `${N} order rows`);
    const first = page.getByTestId("logs-table").locator("tbody tr").first();
    const cells = await first.locator("td").allTextContents();
    assert(cells[3] === `/orders/${1000 + N - 1}` && cells[1] === "shop", `newest first: ${cells}`);
    const expected = new Date((t0 + N - 1) * 1000).toLocaleString("en-US", { timeZone: TZ, year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    assert(cells[0] === expected, `time in the browser's zone ${TZ}: ${cells[0]} vs ${expected}`);
    // Filters: method and status range.
    await page.getByLabel("Method").selectOption("POST");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await eventually(async () => (await page.getByTestId("logs-table").locator("tbody tr").count()) === 5, "5 POST rows");
    await page.getByLabel("Method").selectOption("");
    await page.getByLabel("Status from").fill("500");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await eventually(async () => (await page.getByTestId("logs-table").locator("tbody tr").count()) === 4, "4 rows with status 500");
    await checkPage(page, "logs");
    await page.getByLabel("Status from").fill("");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await eventually(async () => (await page.getByTestId("logs-table").locator("tbody tr").count()) === N, "filters cleared");
  });

  test("export the filtered logs as CSV", async () => {
    const page = S.alicePage;
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    assert(/^boing-logs-.*\.csv$/.test(download.suggestedFilename()), "a .csv file name");
    const file = await download.path();
    const csv = fs.readFileSync(file, "utf8");
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.copyFileSync(file, path.join(ARTIFACTS, "core-logs-export.csv"));
    const lines = csv.trim().split(/\r?\n/);
    assert(lines[0].startsWith("id,api_id,timestamp,method,endpoint"), `CSV header: ${lines[0]}`);
    assert(lines.length === S.orders + 1, `${S.orders} rows for the /orders/* filter, got ${lines.length - 1}`);
    for (let i = 0; i < S.orders; i++) assert(csv.includes(`/orders/${1000 + i}`), `row /orders/${1000 + i}`);
    await page.getByTestId("export-status").getByText(/Exported \d+ bytes/).waitFor();
  });

  test("overview, detectors and lists pages work for a user", async () => {
    const page = S.alicePage;
    await page.getByRole("link", { name: "Overview" }).click();
    await eventually(async () => Number(await page.getByTestId("hour-requests").textContent()) >= S.orders, "last-hour request count");
    await checkPage(page, "overview");
    await page.getByRole("link", { name: "Detectors" }).click();
    await page.getByRole("heading", { name: /^SQL injection signatures/ }).waitFor();
    assert((await page.getByRole("button", { name: /^Save / }).count()) === 0, "a user cannot change detectors");
    await checkPage(page, "detectors-user");
    await page.getByRole("link", { name: "Allow & block lists" }).click();
    await page.locator("#blacklist-value").fill("203.0.113.66");
    await page.locator("#blacklist-reason").fill("scanner");
    await page.getByRole("button", { name: "Add", exact: true }).nth(1).click();
    await page.getByRole("alert").getByText(/only administrators add global entries/).waitFor();
    await page.locator("#blacklist-api").selectOption({ label: "shop" });
    await page.getByRole("button", { name: "Add", exact: true }).nth(1).click();
    await page.getByTestId("blacklist-table").getByText("203.0.113.66").waitFor();
    await checkPage(page, "lists");
    await page.getByRole("button", { name: "Remove 203.0.113.66 from the block list" }).click();
    await page.getByText("The block list is empty.").waitFor();
    await page.getByRole("link", { name: "Notifications", exact: true }).click();
    await page.getByLabel("Notify me at").selectOption("high");
    assert((await page.evaluate(() => localStorage.getItem("boing.notify.min"))) === "high", "the threshold is kept in the browser");
    assert((await page.getByRole("heading", { name: "Delivery channels" }).count()) === 0, "channels are for admins");
    await checkPage(page, "notifications");
    // Admin-only pages are not offered to a user.
    assert((await page.getByRole("link", { name: "Audit log" }).count()) === 0, "no audit link for a user");
    await page.goto("/audit");
    await page.getByRole("alert").getByText("administrators only").waitFor();
  });

  test("role-aware: another user sees none of alice's APIs or logs", async () => {
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto("/register");
    await page.getByLabel("User name").fill("bob");
    await page.getByLabel("Password").fill("bob-password-1");
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByRole("link", { name: "APIs" }).click();
    await page.getByText("No APIs yet").waitFor();
    await page.getByRole("link", { name: "Logs" }).click();
    await page.getByText("No requests match").waitFor();
    await ctx.close();
  });

  test("admin: every API, detectors editable, agents with counters, audit log", async () => {
    // An enrolled agent with a heartbeat, so the agents page has a row with counters.
    const admin = await rest.login(ADMIN.username, ADMIN.password);
    const et = (await rest.call("POST", "/api/agents", { name: "web-1" }, admin)).json.enrollment_token;
    const en = (await rest.call("POST", "/api/agents/enroll", { enrollment_token: et, hostname: "web-1", version: "0.9.1" })).json;
    const hb = await rest.call("POST", "/api/agents/heartbeat", { version: "0.9.1", counters: { events_captured: 1234, events_dropped: 5 } }, en.agent_token);
    assert(hb.status === 200, `heartbeat ${hb.text}`);
    const ctx = await newContext();
    const page = await ctx.newPage();
    await uiLogin(page, ADMIN.username, ADMIN.password);
    await page.getByRole("link", { name: "APIs" }).click();
    await page.getByTestId("apis-table").getByText("shop").waitFor();
    await page.getByRole("link", { name: "Detectors" }).click();
    const sev = page.locator("#det-sqli-severity");
    await sev.selectOption("critical");
    await page.getByRole("button", { name: "Save SQL injection signatures", exact: true }).click();
    await page.getByText("Saved; applies from the next event.").first().waitFor();
    const d = (await rest.call("GET", "/api/detectors", undefined, admin)).json.detectors.find((x) => x.id === "sqli");
    assert(d.severity === "critical", "the detector change is stored");
    await page.locator("#det-sqli-config").fill("{not json");
    await page.getByRole("button", { name: "Save SQL injection signatures", exact: true }).click();
    await page.getByRole("alert").getByText(/not valid JSON/).waitFor();
    await sev.selectOption("high");
    await page.locator("#det-sqli-config").fill(JSON.stringify(d.config));
    await page.getByRole("button", { name: "Save SQL injection signatures", exact: true }).click();
    await checkPage(page, "detectors-admin");
    await page.getByRole("link", { name: "Agents" }).click();
    const row = page.getByTestId("agents-table").locator("tbody tr").first();
    await row.getByText("web-1").waitFor();
    const text = await row.textContent();
    assert(text.includes("0.9.1") && text.includes("events captured") && text.includes("1,234") && text.includes("events dropped"), `agent row: ${text}`);
    await checkPage(page, "agents");
    await page.getByRole("link", { name: "Users" }).click();
    const bobRow = page.getByTestId("users-table").locator("tr").filter({ hasText: "bob" });
    await page.getByLabel("Role of bob").selectOption("admin");
    await eventually(async () => (await rest.call("GET", "/api/users", undefined, admin)).json.users.find((u) => u.username === "bob").role === "admin", "bob promoted");
    await bobRow.getByRole("button", { name: "Disable bob" }).click();
    await bobRow.getByText("disabled").waitFor();
    const bobLogin = await rest.call("POST", "/api/login", { username: "bob", password: "bob-password-1" });
    assert(bobLogin.status !== 200, `a disabled account cannot log in (${bobLogin.status})`);
    assert(await page.getByLabel("Role of admin1").isDisabled(), "an admin cannot demote themself here");
    await checkPage(page, "users");
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByTestId("audit-table").waitFor();
    const audit = await page.getByTestId("audit-table").textContent();
    assert(audit.includes("alice") && audit.includes("admin1"), "the audit log names who did what");
    await checkPage(page, "audit");
    await page.getByRole("link", { name: "Notifications", exact: true }).click();
    await page.getByRole("heading", { name: "Delivery channels" }).waitFor();
    await checkPage(page, "notifications-admin");
    await page.getByRole("link", { name: "Live stream" }).click();
    await checkPage(page, "live");
    await page.getByRole("link", { name: "Alerts" }).click();
    await checkPage(page, "alerts");
    await ctx.close();
  });

  test("keyboard only: log in, open APIs, create one, copy its snippet, switch tabs", async () => {
    const ctx = await newContext();
    await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.base });
    const page = await ctx.newPage();
    const kb = page.keyboard;
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      return el ? `${el.tagName.toLowerCase()}|${el.id}|${(el.textContent || "").trim()}|${el.getAttribute("role") || ""}` : "";
    });
    const tabTo = async (re, max = 60) => {
      for (let i = 0; i < max; i++) {
        await kb.press("Tab");
        const f = await focused();
        if (re.test(f)) return f;
      }
      throw new Error(`Tab never reached ${re}; last focus ${await focused()}`);
    };
    await page.goto("/login");
    assert(/^input\|username/.test(await focused()), "the user name field has focus on load");
    await kb.type("alice");
    await kb.press("Tab");
    await kb.type(PASSWORD);
    await kb.press("Enter");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    // The first Tab reaches the skip link.
    await kb.press("Tab");
    assert((await focused()).includes("Skip to content"), "a skip link comes first");
    await tabTo(/^a\|\|APIs\|/);
    await kb.press("Enter");
    await page.getByRole("heading", { name: "APIs", exact: true }).waitFor();
    assert((await focused()).startsWith("h1|page-title"), "focus moves to the new page's heading");
    await tabTo(/^input\|api-name/);
    await kb.type("billing");
    await kb.press("Enter");
    await page.getByTestId("ingest-key").waitFor();
    await tabTo(/^button\|\|Copy Node\.js/);
    await kb.press("Enter");
    await page.getByText("Node.js (Express) snippet copied.").waitFor();
    assert((await page.evaluate(() => navigator.clipboard.readText())).includes("app.use(boingMiddleware);"), "copied by keyboard");
    // The tabs come before the copy button: Shift+Tab back to the selected one.
    for (let i = 0; i < 5 && !/\|tab$/.test(await focused()); i++) await kb.press("Shift+Tab");
    assert(/\|tab$/.test(await focused()), "the snippet tabs are reachable");
    await kb.press("ArrowRight");
    assert((await focused()).includes("Python"), "arrow keys move between tabs");
    await page.getByTestId("snippet-python").waitFor();
    await tabTo(/^button\|\|I have stored the key/);
    await kb.press("Enter");
    await page.getByTestId("apis-table").getByText("billing").waitFor();
    await ctx.close();
  });
}

// --- live (alerts endpoints and streams) ----------------------------------------------------
if (group === "live") {
  test("the server offers the alerts endpoints and streams", async () => {
    S.aliceToken = (await rest.call("POST", "/api/register", { username: "alice", password: PASSWORD })).json.token;
    const r = await rest.call("GET", "/api/alerts", undefined, S.aliceToken);
    if (r.status === 404) throw new Skip("SKIPPED: the alerts endpoints (issue 5) are not on this server yet");
    assert(r.status === 200, `GET /api/alerts: ${r.status} ${r.text}`);
    const api = await rest.call("POST", "/api/apis", { name: "shop" }, S.aliceToken);
    S.key = api.json.ingest_key;
    S.apiId = api.json.id;
    S.ctx = await newContext();
    S.page = await S.ctx.newPage();
    await uiLogin(S.page, "alice", PASSWORD);
  });

  const traffic = async (seconds, perSecond, extra = () => ({})) => {
    const end = Date.now() + seconds * 1000;
    let i = 0;
    while (Date.now() < end) {
      const batch = [];
      for (let k = 0; k < perSecond; k++, i++) {
        batch.push(
          rest.ingest({
            api_key: S.key,
            timestamp: Date.now() / 1000,
            method: "GET",
            endpoint: `/items/${i % 10}`,
            client_ip: `192.0.2.${i % 3}`,
            status_code: i % 4 === 0 ? 503 : 200,
            latency_ms: 5 + (i % 20),
            ...extra(i),
          }),
        );
      }
      await Promise.all(batch);
      await sleep(250);
    }
  };

  test("overview: live charts move with the traffic", async () => {
    const page = S.page;
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByTestId("metrics-state").getByText("metrics stream: live").waitFor({ timeout: 10000 });
    // Checked while the traffic runs: the newest tick describes the last second only.
    const sending = traffic(6, 10);
    await eventually(async () => {
      const label = await page.getByRole("img", { name: /^Requests per second/ }).getAttribute("aria-label");
      return /req\/s [1-9]/.test(label);
    }, "a non-zero requests/s point");
    await sending;
    const errLabel = await page.getByRole("img", { name: /^Error rate/ }).getAttribute("aria-label");
    assert(!/no data/.test(errLabel), `error rate charted: ${errLabel}`);
    await page.getByText(/^192\.0\.2\.[0-2]$/).first().waitFor();
    await checkPage(page, "overview-live");
  });

  test("live stream: rows arrive, filters apply, pause holds them back", async () => {
    const page = S.page;
    await page.getByRole("link", { name: "Live stream" }).click();
    await page.getByTestId("stream-state").getByText("activity stream: live").waitFor();
    await traffic(1, 5);
    await page.getByTestId("live-table").locator("tbody tr").first().waitFor();
    await page.getByLabel("Status").selectOption("5");
    const statuses = await page.getByTestId("live-table").locator("tbody tr td:nth-child(6)").allTextContents();
    assert(statuses.length > 0 && statuses.every((s) => s === "503"), `only 5xx rows: ${statuses}`);
    await page.getByLabel("Status").selectOption("");
    await page.getByRole("button", { name: "Pause" }).click();
    const before = await page.getByTestId("live-table").locator("tbody tr").count();
    await traffic(1, 5);
    await page.getByText(/new while paused/).waitFor();
    assert((await page.getByTestId("live-table").locator("tbody tr").count()) === before, "paused: the table does not move");
    await page.getByRole("button", { name: "Resume" }).click();
    await eventually(async () => (await page.getByTestId("live-table").locator("tbody tr").count()) > before, "held rows shown on resume");
    await checkPage(page, "live-stream");
  });

  test("an SQL injection raises an alert: toast, bell count, acknowledge, mute, evidence", async () => {
    const page = S.page;
    await page.getByRole("link", { name: "Alerts" }).click();
    await rest.ingest({
      api_key: S.key,
      timestamp: Date.now() / 1000,
      method: "GET",
      endpoint: "/search",
      query: "q=1' UNION SELECT username, password FROM users--",
      client_ip: "203.0.113.99",
      status_code: 200,
      latency_ms: 12,
    });
    // The signatures (sqli) and the payload classifier each raise their own alert for this
    // event (one fingerprint per detector): follow the signature detector's toast.
    const toast = page.locator(".toast").filter({ hasText: "203.0.113.99" }).filter({ hasText: /New alert: sqli/ });
    await toast.waitFor({ timeout: 15000 });
    assert(/high|critical/i.test(await toast.textContent()), "the toast shows the severity");
    assert(Number(await page.getByTestId("unread-count").textContent()) >= 1, "the bell counts it as unread");
    const row = page.getByTestId("alerts-table").locator("tbody tr").filter({ hasText: "sqli" }).first();
    await row.waitFor({ timeout: 10000 });
    await row.getByRole("button", { name: /^Acknowledge alert/ }).click();
    await row.getByText("acknowledged").waitFor();
    await row.getByRole("link").first().click();
    await page.getByRole("heading", { name: /^Alert #/ }).waitFor();
    assert((await page.getByTestId("alert-status").textContent()).startsWith("acknowledged"), "acknowledged");
    const evidence = await page.getByRole("region", { name: "Evidence" }).or(page.locator("pre.evidence")).first().textContent();
    assert(/UNION|union/.test(evidence), `the evidence shows the matched text: ${evidence.slice(0, 200)}`);
    await page.getByLabel(/^Mute alert \d+ for$/).selectOption("3600");
    await page.getByRole("button", { name: /^Mute alert/ }).click();
    await page.getByTestId("alert-status").getByText(/muted until/).waitFor();
    await checkPage(page, "alert-detail");
    await page.getByRole("button", { name: /^Notifications, \d+ unread$/ }).click();
    await page.getByRole("button", { name: "Mark all read" }).click();
    assert((await page.getByTestId("unread-count").count()) === 0, "read");
  });

  test("mute rules: add one for an actor, see it, delete it", async () => {
    const page = S.page;
    await page.goto("/notifications");
    await page.getByLabel("Actor").fill("ip:203.0.113.99");
    await page.locator("#mute-api").selectOption({ label: "shop" }); // a user mutes within own APIs
    await page.locator("#mute-duration").selectOption("14400");
    await page.getByLabel("Comment").fill("pen test");
    await page.getByRole("button", { name: "Add mute rule" }).click();
    const row = page.locator("tr").filter({ hasText: "ip:203.0.113.99" });
    await row.waitFor();
    assert((await row.textContent()).includes("pen test"), "the rule is listed with its comment");
    const mutes = (await rest.call("GET", "/api/mutes", undefined, S.aliceToken)).json.mutes;
    assert(mutes.length === 1 && mutes[0].expires_at > Date.now() / 1000 + 14000, `stored for 4 hours: ${JSON.stringify(mutes)}`);
    await checkPage(page, "notifications-mutes");
    await row.getByRole("button", { name: /^Delete mute rule/ }).click();
    await page.getByText("No active mute rule.").waitFor();
  });
}

// --- run -----------------------------------------------------------------------------------
const started = Date.now();
let passed = 0,
  failed = 0,
  skipped = 0;
try {
  if (!fs.existsSync(path.join(DIST, "index.html"))) throw new Error(`${DIST}/index.html missing: run npm run build first`);
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} missing: build the server first`);
  server = await startServer({ binary: BINARY, dashboardDir: DIST });
  rest = client(server.base);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  let skipRest = null;
  for (const t of tests) {
    const t1 = Date.now();
    if (skipRest) {
      skipped++;
      console.log(`SKIP ${t.name} (${skipRest})`);
      continue;
    }
    try {
      await t.fn();
      passed++;
      console.log(`PASS ${t.name} (${Date.now() - t1} ms)`);
    } catch (e) {
      if (e instanceof Skip) {
        skipped++;
        skipRest = e.message;
        console.log(`SKIP ${t.name}: ${e.message}`);
        continue;
      }
      failed++;
      console.log(`FAIL ${t.name} (${Date.now() - t1} ms)\n  ${String(e.stack || e).split("\n").slice(0, 8).join("\n  ")}`);
    }
  }
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) {
    if (failed) console.log("--- server output (tail) ---\n" + server.output().slice(-3000));
    await server.stop();
  }
  if (axeReport.length) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, `${group}-axe.json`), JSON.stringify(axeReport, null, 1));
  }
}
console.log(`dashboard e2e (${group}) in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${ARTIFACTS}`);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
process.exit(failed ? 1 : 0);
