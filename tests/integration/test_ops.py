"""Operations and HTTP limits: /healthz, /readyz, Prometheus /metrics (parsed), METRICS_TOKEN, 404/405,
413/431/400 with JSON error bodies, deep nesting on every kind of endpoint, and CORS."""
import json
import re
import socket
import time
import unittest

from harness import BACKEND, Server, ServerTestCase, event, gz, raw_http

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_prometheus(text):
    """Parses the text exposition format (0.0.4); returns {series: value}. Raises on any error."""
    types, samples = {}, {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                if not METRIC_NAME.match(parts[2]):
                    raise ValueError(f"line {n}: bad metric name {parts[2]!r}")
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        raise ValueError(f"line {n}: bad TYPE line {line!r}")
                    if parts[2] in types:
                        raise ValueError(f"line {n}: second TYPE for {parts[2]}")
                    types[parts[2]] = parts[3]
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$", line)
        if not m:
            raise ValueError(f"line {n}: not a sample: {line!r}")
        name, labels, value = m.group(1), m.group(2), m.group(3)
        if labels:
            body = labels[1:-1]
            pos = 0
            while pos < len(body):
                lm = LABEL.match(body, pos)
                if not lm:
                    raise ValueError(f"line {n}: bad labels {labels!r}")
                pos = lm.end()
        float(value)  # NaN, +Inf, -Inf and numbers parse
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in types and family not in types:
            raise ValueError(f"line {n}: sample {name} without a TYPE line before it")
        series = name + (labels or "")
        if series in samples:
            raise ValueError(f"line {n}: duplicate series {series}")
        samples[series] = float(value)
    return types, samples


class OpsTest(ServerTestCase):
    def test_health_and_ready(self):
        r = self.server.get("/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}), r)
        r = self.server.get("/readyz")
        self.assertEqual(r.status, 200, r)

    def test_prometheus_text_format(self):
        r = self.server.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"), r.headers)
        types, before = parse_prometheus(r.body)
        self.assertTrue(before)
        api = self.server.create_api(self.admin, "prom")
        self.assertEqual(self.server.batch([event()] * 5, headers={"X-Api-Key": api["ingest_key"]}).json()["accepted"], 5)
        _, after = parse_prometheus(self.server.get("/metrics").body)
        grew_by_5 = [s for s, v in after.items() if s in before and v - before[s] == 5]
        self.assertTrue(grew_by_5, "no series counts the 5 ingested events")
        for series in after:
            name = series.split("{")[0]
            if types.get(name) == "counter":
                self.assertGreaterEqual(after[series], before.get(series, 0), f"counter {series} went down")

    def test_unknown_route_and_wrong_method(self):
        r = self.server.get("/api/nothing-here", self.admin)
        self.assertError(r, 404)
        r = self.server.delete("/api/login")
        self.assertError(r, 405)
        self.assertIn("POST", r.header("Allow") or "", r.headers)
        r = self.server.request("PATCH", "/api/apis", {"name": "x"}, self.admin)
        self.assertError(r, 405)
        self.assertEqual(set((r.header("Allow") or "").replace(" ", "").split(",")) >= {"GET", "POST"}, True, r.headers)


class MetricsTokenTest(ServerTestCase):
    server_env = {"METRICS_TOKEN": "prom-scrape-token-123"}

    def test_metrics_token(self):
        self.assertError(self.server.get("/metrics"), 401)
        self.assertError(self.server.get("/metrics", "wrong-token-000000000"), 401)
        self.assertError(self.server.get("/metrics", self.admin), 401)
        r = self.server.get("/metrics", "prom-scrape-token-123")
        self.assertEqual(r.status, 200, r)
        parse_prometheus(r.body)
        self.assertEqual(self.server.get("/healthz").status, 200, "health stays open")


class LimitsTest(ServerTestCase):
    server_env = {"MAX_BODY_BYTES": "20000", "MAX_HEADER_BYTES": "4096", "EVENT_MAX_DEPTH": "8"}

    def test_body_too_large_413(self):
        for path in ("/api/ingest", "/api/ingest/batch", "/api/login", "/api/apis"):
            with self.subTest(path):
                r = self.server.post(path, raw="[" + " " * 30000 + "]", token=self.admin)
                j = self.assertError(r, 413)
        self.assertIn("20000", j["error"])
        self.assertAlive()

    def test_chunked_body_too_large_413(self):
        chunk = b"x" * 8000
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
        req = (b"POST /api/ingest/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
        got = raw_http(self.server.port, req)
        self.assertIsNotNone(got, "no answer")
        self.assertEqual(got[0], 413, got)
        self.assertAlive()

    def test_gzip_bomb_413(self):
        bomb = gz(b"[" + b" " * 5_000_000 + b"]")
        self.assertLess(len(bomb), 20000)
        r = self.server.post("/api/ingest/batch", raw=bomb, headers={"Content-Encoding": "gzip"})
        self.assertError(r, 413)
        self.assertAlive()

    def test_headers_too_large_431(self):
        r = self.server.get("/healthz", headers={"X-Big": "a" * 8000})
        self.assertError(r, 431)
        r = self.server.get("/healthz", headers={f"X-H{i}": "v" * 40 for i in range(200)})
        self.assertError(r, 431)
        self.assertAlive()

    def test_deep_nesting_in_events_400(self):
        deep = event("whatever")
        deep["x"] = json.loads("[" * 20 + "]" * 20)
        self.assertError(self.server.post("/api/ingest", deep), 400)
        r = self.server.batch([deep])
        if r.status == 200:
            self.assertEqual(r.json()["rejected"], 1, r)
        else:
            self.assertError(r, 400)
        self.assertAlive()

    def test_malformed_json_bodies_400(self):
        for path in ("/api/login", "/api/register", "/api/apis", "/api/blacklist", "/api/agents/enroll"):
            for raw in ("{", "[1,2]", "\"x\"", "{\"a\":1}garbage", b"\xff\xfe{}"):
                with self.subTest(path=path, raw=raw):
                    self.assertError(self.server.post(path, raw=raw, token=self.admin), 400)
        self.assertAlive()


class DeepNestingTest(unittest.TestCase):
    """A body nested a million levels deep (2 MB, under the default 8 MiB body limit) must be refused
    with a 4xx JSON error, wherever it is sent: never crash the process."""
    DEPTH = 1_000_000

    def setUp(self):
        self.server = Server().start()
        self.admin = self.server.admin_token()

    def tearDown(self):
        self.server.cleanup()

    def nest(self):
        return "[" * self.DEPTH + "]" * self.DEPTH

    def check(self, method, path, raw, token=None):
        try:
            r = self.server.request(method, path, raw=raw, token=token, timeout=60)
        except (ConnectionError, http_errors()) as e:
            r = e
        time.sleep(0.3)
        self.assertTrue(self.server.alive(), f"{method} {path} with {self.DEPTH}-deep JSON crashed the server "
                                             f"(exit {self.server.proc.returncode}); answer: {r!r}")
        self.assertTrue(hasattr(r, "status") and 400 <= r.status < 500, f"{method} {path}: {r!r}")
        self.assertIn("error", r.json())

    def test_api_create_by_any_registered_user(self):
        user = self.server.register("deep-user")  # anyone can register: a pre-admin attack surface
        self.check("POST", "/api/apis", '{"name":"deep","settings":{"a":' + self.nest() + "}}", user)

    def test_api_update(self):
        api = self.server.create_api(self.admin, "deep-put")
        self.check("PUT", f"/api/apis/{api['id']}", '{"settings":{"a":' + self.nest() + "}}", self.admin)

    def test_detector_config(self):
        det = self.server.get("/api/detectors", self.admin).json()["detectors"][0]["id"]
        self.check("PUT", f"/api/detectors/{det}", '{"config":{"a":' + self.nest() + "}}", self.admin)

    def test_agent_heartbeat(self):
        agent = self.server.enroll_agent(self.admin)
        self.check("POST", "/api/agents/heartbeat", '{"counters":{"a":' + self.nest() + "}}", agent["agent_token"])

    def test_login_and_ingest(self):
        self.check("POST", "/api/login", '{"username":"x","password":' + self.nest() + "}")
        self.check("POST", "/api/ingest", '{"headers":' + self.nest() + "}")


def http_errors():
    import http.client
    return http.client.HTTPException


class CorsTest(ServerTestCase):
    server_env = {"CORS_ORIGINS": "http://localhost:5173,https://dash.example"}

    def test_preflight_allowed_origin(self):
        r = self.server.request("OPTIONS", "/api/apis", headers={
            "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "http://localhost:5173")
        self.assertIn("POST", (r.header("Access-Control-Allow-Methods") or "").upper())
        allowed = (r.header("Access-Control-Allow-Headers") or "").lower()
        self.assertTrue("authorization" in allowed or allowed == "*", r.headers)

    def test_simple_request_allowed_and_denied(self):
        r = self.server.get("/api/me", self.admin, headers={"Origin": "https://dash.example"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://dash.example")
        for origin in ("http://evil.example", "http://localhost:5173.evil.example", "null"):
            with self.subTest(origin):
                r = self.server.get("/api/me", self.admin, headers={"Origin": origin})
                self.assertIsNone(r.header("Access-Control-Allow-Origin"), r.headers)
                r = self.server.request("OPTIONS", "/api/apis", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
                self.assertIsNone(r.header("Access-Control-Allow-Origin"), r.headers)

    def test_never_wildcard(self):
        r = self.server.get("/healthz", headers={"Origin": "http://localhost:5173"})
        self.assertNotEqual(r.header("Access-Control-Allow-Origin"), "*")


class NoCorsTest(ServerTestCase):
    def test_no_origins_configured(self):
        r = self.server.get("/api/me", self.admin, headers={"Origin": "http://localhost:5173"})
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))


if __name__ == "__main__":
    unittest.main()
