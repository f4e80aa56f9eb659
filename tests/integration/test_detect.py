"""Detection end to end: events accepted by ingest reach the pipeline off the request path,
findings are stored and served by /api/findings, and detector or list changes made through the API
apply from the next event. Also `boing-server analyze` on NDJSON and on raw values."""
import json
import os
import subprocess
import tempfile
import time
import unittest

from harness import BINARY, ServerTestCase, event, wait_for



class DetectionTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.owner = cls.server.register("detowner")
        cls.api = cls.server.create_api(cls.owner, "det-api")
        cls.key = cls.api["ingest_key"]

    def ingest(self, **fields):
        r = self.server.post("/api/ingest", event(self.key, **fields))
        self.assertEqual(r.status, 200, r)
        return r.json()["id"]

    def findings(self, token=None, **query):
        q = "&".join(f"{k}={v}" for k, v in dict(api_id=self.api["id"], **query).items())
        r = self.server.get("/api/findings?" + q, token or self.owner)
        self.assertEqual(r.status, 200, r)
        return r.json()["findings"]

    def for_event(self, event_id, detector=None):
        return [f for f in self.findings(event_id=event_id)
                if detector is None or f["detector"] == detector]

    def test_sqli_event_yields_a_finding(self):
        eid = self.ingest(endpoint="/search?q=1%27%20OR%20%271%27%3D%271", client_ip="198.51.100.20")
        found = wait_for(lambda: self.for_event(eid, "sqli"))
        self.assertTrue(found, "no sqli finding for the event")
        f = found[0]
        self.assertEqual(f["severity"], "high")
        self.assertEqual(f["actor"], "ip:198.51.100.20")
        self.assertEqual(f["endpoint_template"], "/search")
        self.assertEqual(f["api_id"], self.api["id"])
        self.assertEqual(f["evidence"]["location"], "query")
        # Filters and visibility: another user sees nothing of this API.
        self.assertTrue(self.findings(detector="sqli", severity="high"))
        self.assertFalse([x for x in self.findings(detector="xss") if x["event_id"] == eid])
        stranger = self.server.register("det-stranger")
        self.assertEqual(self.server.get(f"/api/findings?api_id={self.api['id']}", stranger).status, 404)
        self.assertEqual(self.server.get("/api/findings", stranger).json()["findings"], [])
        self.assertEqual(self.server.get("/api/findings?severity=urgent", self.owner).status, 400)
        self.assertEqual(self.server.get("/api/findings?limit=0", self.owner).status, 400)
        # A clean event raises nothing.
        clean = self.ingest(endpoint="/users/7", client_ip="198.51.100.21")
        barrier = self.ingest(endpoint="/p?x=%3Cscript%3Ealert(1)%3C/script%3E", client_ip="198.51.100.21")
        self.assertTrue(wait_for(lambda: self.for_event(barrier, "xss")))
        self.assertEqual(self.for_event(clean), [])

    def test_detector_change_applies_to_the_next_event(self):
        r = self.server.request("PUT", "/api/detectors/sqli", {"enabled": False}, self.admin)
        self.assertEqual(r.status, 200, r)
        try:
            quiet = self.ingest(endpoint="/s?q=1%20union%20select%20null,null", client_ip="198.51.100.30")
            # Events are processed in order: once the barrier's finding exists, the event before
            # it has been judged with sqli disabled.
            barrier = self.ingest(endpoint="/f?path=..%2F..%2Fetc%2Fpasswd", client_ip="198.51.100.30")
            self.assertTrue(wait_for(lambda: self.for_event(barrier, "path_traversal")))
            self.assertEqual(self.for_event(quiet, "sqli"), [])
        finally:
            self.server.request("PUT", "/api/detectors/sqli", {"enabled": True, "severity": "critical"}, self.admin)
        loud = self.ingest(endpoint="/s?q=1%20union%20select%20null,null", client_ip="198.51.100.30")
        found = wait_for(lambda: self.for_event(loud, "sqli"))
        self.assertTrue(found)
        self.assertEqual(found[0]["severity"], "critical")
        self.server.request("PUT", "/api/detectors/sqli", {"severity": "high"}, self.admin)

    def test_rate_limit_threshold_change(self):
        r = self.server.request("PUT", "/api/detectors/rate_limit", {"config": {"per_minute": 3}}, self.admin)
        self.assertEqual(r.status, 200, r)
        try:
            ids = [self.ingest(endpoint="/rl", client_ip="198.51.100.40") for _ in range(5)]
            found = wait_for(lambda: [f for f in self.findings(detector="rate_limit")
                                      if f["actor"] == "ip:198.51.100.40"])
            self.assertTrue(found)
            self.assertIn(found[0]["event_id"], ids[3:])  # the 4th request is the first over 3/min
            self.assertEqual(found[0]["evidence"]["limit"], 3)
        finally:
            self.server.request("PUT", "/api/detectors/rate_limit", {"config": {"per_minute": 100}}, self.admin)

    def test_whitelist_suppresses_and_blacklist_fires(self):
        r = self.server.post("/api/whitelist", {"kind": "ip", "value": "198.51.100.50",
                                                "api_id": self.api["id"]}, self.owner)
        self.assertEqual(r.status, 201, r)
        r = self.server.post("/api/blacklist", {"kind": "cidr", "value": "203.0.113.0/24",
                                                "api_id": self.api["id"]}, self.owner)
        self.assertEqual(r.status, 201, r)
        white = self.ingest(endpoint="/s?q=1%20union%20select%201", client_ip="198.51.100.50")
        black = self.ingest(endpoint="/ok", client_ip="203.0.113.9")
        found = wait_for(lambda: self.for_event(black, "blacklist"))
        self.assertTrue(found)
        self.assertEqual(found[0]["evidence"]["value"], "203.0.113.0/24")
        self.assertEqual(self.for_event(white), [])

    def test_metrics_count_detection(self):
        self.ingest(endpoint="/m")
        text = wait_for(lambda: (lambda t: t if "boing_detection_events_total" in t else None)(
            self.server.get("/metrics").body))
        self.assertIn("boing_detection_dropped_total 0", text)
        self.assertIn("boing_findings_total", text)


class GeoDetectionTest(ServerTestCase):
    """geo_new_country and impossible_travel on the DB-IP database scripts/setup.sh installs
    (the default GEOIP_DB). 8.8.8.8 is US (Mountain View) and 133.11.0.1 JP (Chiyoda City) in it."""

    def test_identity_from_a_second_country_raises_both_findings(self):
        owner = self.server.register("geoowner")
        api = self.server.create_api(owner, "geo-api")
        detectors = {d["id"]: d for d in
                     self.server.get("/api/detectors", owner).json()["detectors"]}
        for d in ("geo_new_country", "impossible_travel"):
            self.assertTrue(detectors[d]["implemented"], d)
            self.assertTrue(detectors[d]["enabled"], d)
            self.assertIsNone(detectors[d]["unavailable"], d)
        self.assertEqual(detectors["geo_new_country"]["config"]["min_history_events"], 10)
        self.assertEqual(detectors["impossible_travel"]["config"]["max_speed_kmh"], 1000)

        t0 = time.time() - 3600
        auth = {"Authorization": "Bearer geo-caller-token"}
        batch = [event(api["ingest_key"], timestamp=t0 + 60 * i, endpoint="/account",
                       client_ip="8.8.8.8", headers=auth) for i in range(10)]
        # A caller without credentials moving the same way is not an identity: nothing.
        batch += [event(api["ingest_key"], timestamp=t0 + 60 * i, endpoint="/account",
                        client_ip="8.8.8.8") for i in range(10)]
        r = self.server.batch(batch)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["accepted"], len(batch), r)
        anon = self.server.post("/api/ingest", event(api["ingest_key"], timestamp=t0 + 660,
                                                     endpoint="/account", client_ip="133.11.0.1"))
        self.assertEqual(anon.status, 200, anon)
        r = self.server.post("/api/ingest", event(api["ingest_key"], timestamp=t0 + 660,
                                                  endpoint="/account", client_ip="133.11.0.1",
                                                  headers=auth))
        self.assertEqual(r.status, 200, r)
        eid = r.json()["id"]

        def of(detector):
            r = self.server.get(f"/api/findings?api_id={api['id']}&detector={detector}", owner)
            self.assertEqual(r.status, 200, r)
            return r.json()["findings"]

        self.assertTrue(wait_for(lambda: of("geo_new_country") and of("impossible_travel")))
        [new] = of("geo_new_country")
        self.assertEqual(new["event_id"], eid)
        self.assertEqual(new["severity"], "medium")
        self.assertTrue(new["actor"].startswith("id:"), new)
        self.assertEqual(new["client_ip"], "133.11.0.1")
        self.assertEqual(new["evidence"]["country"], "JP")
        self.assertEqual(new["evidence"]["known_countries"], ["US"])
        self.assertEqual(new["evidence"]["history_events"], 10)
        self.assertEqual(new["evidence"]["previous"]["ip"], "8.8.8.8")
        [travel] = of("impossible_travel")
        self.assertEqual(travel["event_id"], eid)
        self.assertEqual(travel["severity"], "high")
        ev = travel["evidence"]
        self.assertEqual((ev["from"]["country"], ev["to"]["country"]), ("US", "JP"))
        self.assertEqual(ev["from"]["city"], "Mountain View")
        self.assertAlmostEqual(ev["seconds"], 120, delta=0.01)
        self.assertGreater(ev["distance_km"], 8000)
        self.assertGreater(ev["speed_kmh"], 200000)
        # The anonymous caller raised no geographic finding.
        self.assertEqual([f for f in of("geo_new_country") + of("impossible_travel")
                          if f["event_id"] == anon.json()["id"]], [])
        text = self.server.get("/metrics").body
        self.assertIn('boing_geoip_lookups_total{outcome="found"}', text)
        self.assertIn('boing_detection_state_entries{table="geo_identities"} 1', text)


class GeoUnavailableTest(ServerTestCase):
    """Without its database the geographic detectors say why and raise nothing."""
    server_env = {"GEOIP_DB": "/nonexistent/boing-geo.mmdb"}

    def test_detectors_show_why_and_stay_quiet(self):
        owner = self.server.register("nogeo")
        api = self.server.create_api(owner, "nogeo-api")
        detectors = {d["id"]: d for d in
                     self.server.get("/api/detectors", owner).json()["detectors"]}
        for d in ("geo_new_country", "impossible_travel"):
            self.assertIn("/nonexistent/boing-geo.mmdb", detectors[d]["unavailable"] or "", d)
        self.assertIsNone(detectors["sqli"]["unavailable"])
        self.assertIn("IP geolocation database not loaded", self.server.log_files_text())
        t0 = time.time() - 3600
        auth = {"Authorization": "Bearer nogeo-token"}
        batch = [event(api["ingest_key"], timestamp=t0 + i, client_ip="8.8.8.8", headers=auth)
                 for i in range(12)]
        batch.append(event(api["ingest_key"], timestamp=t0 + 20, client_ip="133.11.0.1",
                           headers=auth, endpoint="/s?q=%3Cscript%3Ealert(1)%3C/script%3E"))
        r = self.server.batch(batch)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["accepted"], len(batch), r)

        def of(detector):
            return self.server.get(f"/api/findings?api_id={api['id']}&detector={detector}",
                                   owner).json()["findings"]

        # The last event's xss finding shows the batch went through detection.
        self.assertTrue(wait_for(lambda: of("xss")))
        self.assertEqual(of("geo_new_country") + of("impossible_travel"), [])


class AnalyzeTest(unittest.TestCase):
    def run_analyze(self, args, stdin):
        p = subprocess.run([BINARY, "analyze"] + args, input=stdin, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [json.loads(line) for line in p.stdout.splitlines()]

    def test_values(self):
        out = self.run_analyze(["--values"], "calle mayor 5\n1' or '1'='1\n<script>alert(1)</script>\n\n")
        self.assertEqual(len(out), 4)
        self.assertEqual(out[0], {"findings": []})
        # Signatures first, then the payload classifier (the model built next to the binary).
        self.assertEqual([f["detector"] for f in out[1]["findings"]], ["sqli", "payload_classifier"])
        ml = out[1]["findings"][1]
        self.assertEqual(ml["evidence"]["class"], "sqli")
        self.assertEqual(ml["evidence"]["location"], "value")
        self.assertGreater(ml["score"], 1)
        self.assertEqual(out[2]["findings"][0]["detector"], "xss")
        self.assertEqual(out[2]["findings"][0]["severity"], "high")
        self.assertEqual(out[3], {"findings": []})

    def test_train_on_own_data(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.csv")
            with open(bad, "w") as f:
                f.write("payload,label\nhello,norm\nonly-one-field\n")
            p = subprocess.run([BINARY, "train", "--data", bad], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, DATA_DIR=d))
            self.assertEqual(p.returncode, 1)
            self.assertIn(bad + ":3: expected 2 fields, found 1", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "payload_classifier.model")))
            # A user's own labels: "secret" values are the attack class here.
            good = os.path.join(d, "mine.csv")
            with open(good, "w") as f:
                f.write("payload,label\n")
                for i in range(60):
                    f.write(f"order-{i},benign\nTOPSECRET-{i * 7},leak\n")
            p = subprocess.run([BINARY, "train", "--data", good], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, DATA_DIR=d))
            self.assertEqual(p.returncode, 0, p.stderr)
            summary = json.loads(p.stdout)
            self.assertEqual(summary["rows"], 120)
            self.assertEqual(summary["benign_label"], "benign")
            # analyze picks the retrained model up from DATA_DIR.
            r = subprocess.run([BINARY, "analyze", "--values"], input="topsecret-999\norder-5\n",
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, DATA_DIR=d))
            self.assertEqual(r.returncode, 0, r.stderr)
            out = [json.loads(line) for line in r.stdout.splitlines()]
            self.assertEqual([f["evidence"]["class"] for f in out[0]["findings"]], ["leak"])
            self.assertEqual(out[1]["findings"], [])

    def test_ndjson_events(self):
        lines = [json.dumps(event(endpoint="/a?id=1%20union%20select%201")),
                 json.dumps(event(endpoint="/users/1")),
                 "{not json",
                 json.dumps({"timestamp": 1})]
        out = self.run_analyze([], "\n".join(lines) + "\n")
        self.assertEqual(len(out), 4)
        self.assertEqual(out[0]["findings"][0]["detector"], "sqli")
        self.assertEqual(out[0]["findings"][0]["endpoint_template"], "/a")
        self.assertEqual(out[1]["findings"], [])
        self.assertIn("error", out[2])
        self.assertEqual(out[2]["findings"], [])
        self.assertIn("field", out[3])

    def test_combined_access_log(self):
        lines = ['203.0.113.5 - - [10/Oct/2024:13:55:36 +0200] "GET /items?id=1%27%20or%20%271%27=%271 HTTP/1.1" 200 2326 "-" "curl/8.0"',
                 '203.0.113.5 - frank [10/Oct/2024:13:55:37 +0200] "GET /static/app.js HTTP/1.1" 304 - "https://shop.example/" "Mozilla/5.0"',
                 'garbage']
        out = self.run_analyze(["--format", "combined"], "\n".join(lines) + "\n")
        self.assertEqual(len(out), 3)
        self.assertEqual(out[0]["findings"][0]["detector"], "sqli")
        self.assertEqual(out[0]["findings"][0]["actor"], "ip:203.0.113.5")
        self.assertEqual(out[1]["findings"], [])
        self.assertIn("error", out[2])


if __name__ == "__main__":
    unittest.main()
