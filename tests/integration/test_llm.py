"""The optional `llm` detector end to end, against stand-ins for a llama.cpp server
(llm_standin.py: llama.cpp cannot be installed here, so these speak its /completion protocol
without being models): verdicts become findings with the model, verdict and latency as evidence;
a value already judged is not sent again; at most LLM_MAX_CONCURRENCY requests run at once; a
hanging, failing or garbage-answering endpoint times out or errors, is counted, and the earlier
stages' findings stand; detection keeps its pace while the endpoint hangs."""
import json
import re
import time
import unittest

from harness import ServerTestCase, event, wait_for
from llm_standin import LlamaCppStandIn

MAX_CONCURRENCY = 2

# Query values the payload classifier built with the server is unsure about (attack probability
# in the default grey band [0.2, 0.8), checked in test_default_band_picks_only_uncertain_values):
# the `llm` stage reviews them. The stand-in labels values by keywords.
GREY_SQLI = "admin' or 1 -- {n}"
CLEAR_BENIGN = "garden chairs {n}"
CLEAR_ATTACK = "1' union select username, password from users-- {n}"



def metric(text, series):
    m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class LlmTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.answering = LlamaCppStandIn("answer").start()
        cls.slow = LlamaCppStandIn("answer", delay=0.4).start()
        cls.hanging = LlamaCppStandIn("hang").start()
        cls.garbage = LlamaCppStandIn("garbage").start()
        cls.server_env = {"LLM_ENABLED": "true", "LLM_ENDPOINT": cls.answering.url,
                          "LLM_MODEL": "standin-model", "LLM_TIMEOUT_MS": "3000",
                          "LLM_MAX_CONCURRENCY": str(MAX_CONCURRENCY), "LLM_QUEUE_MAX": "50",
                          "LLM_CACHE_SIZE": "1000"}
        try:
            super().setUpClass()
        except BaseException:
            cls.stop_standins()
            raise
        cls.owner = cls.server.register("llmowner")
        cls.api = cls.server.create_api(cls.owner, "llm-api")
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.stop_standins()

    @classmethod
    def stop_standins(cls):
        for s in (cls.answering, cls.slow, cls.hanging, cls.garbage):
            s.stop()

    # --- helpers ---
    def unique(self, template):
        LlmTest.counter += 1
        return template.format(n=f"n{LlmTest.counter}")

    def configure(self, **config):
        r = self.server.put("/api/detectors/llm", {"config": config}, self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def send(self, values, ip="198.51.100.80"):
        """One event per value (as the query parameter q)."""
        import urllib.parse
        events = [event(self.api["ingest_key"], client_ip=ip,
                        endpoint="/search?q=" + urllib.parse.quote(v)) for v in values]
        r = self.server.batch(events)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["accepted"], len(values), r)

    def findings(self, detector):
        r = self.server.get(f"/api/findings?api_id={self.api['id']}&detector={detector}&limit=1000",
                            self.owner)
        self.assertEqual(r.status, 200, r)
        return r.json()["findings"]

    def llm_findings_for(self, value):
        return [f for f in self.findings("llm") if f["evidence"]["match"] == value[:64]]

    def count_for_ip(self, detector, ip):
        r = self.server.get(f"/api/findings?api_id={self.api['id']}&detector={detector}"
                            f"&client_ip={ip}&limit=1000", self.owner)
        self.assertEqual(r.status, 200, r)
        return len(r.json()["findings"])

    def metrics(self):
        return self.server.get("/metrics").body

    def m(self, series):
        return metric(self.metrics(), series) or 0

    def processed(self):
        return self.m("boing_detection_events_total")

    # --- tests ---
    def test_default_band_picks_only_uncertain_values(self):
        """The default band: an uncertain value is reviewed; a clearly benign one and a clear
        attack (the signatures and the classifier agree) are not sent."""
        self.configure(endpoint=self.answering.url, review_min_probability=0.2,
                       review_max_probability=0.8)
        grey, benign, attack = (self.unique(GREY_SQLI), self.unique(CLEAR_BENIGN),
                                self.unique(CLEAR_ATTACK))
        before = self.answering.requests
        self.send([grey, benign, attack])
        self.assertTrue(wait_for(lambda: self.llm_findings_for(grey), 20), "no llm finding")
        time.sleep(0.5)
        self.assertEqual(self.answering.count(grey), 1)
        self.assertEqual(self.answering.count(benign), 0)
        self.assertEqual(self.answering.count(attack), 0)
        self.assertEqual(self.answering.requests - before, 1)
        self.assertEqual(self.llm_findings_for(grey)[0]["evidence"]["reason"],
                         "classifier_uncertain")
        # With an empty band only signature matches the classifier does not confirm are sent.
        self.configure(review_min_probability=0.9, review_max_probability=0.9)
        unconfirmed, attack2 = self.unique("admin' or 1 {n}"), self.unique(CLEAR_ATTACK)
        self.send([unconfirmed, attack2])
        found = wait_for(lambda: self.llm_findings_for(unconfirmed), 20)
        self.assertTrue(found, "no llm finding for the unconfirmed signature match")
        self.assertEqual(found[0]["evidence"]["reason"], "signature_unconfirmed")
        self.assertEqual(found[0]["evidence"]["signature"], "sqli")
        self.assertLess(found[0]["evidence"]["classifier_probability"], 0.5)
        time.sleep(0.5)
        self.assertEqual(self.answering.count(attack2), 0)
        self.assertEqual(self.answering.problems, [])

    def test_verdict_becomes_finding_with_model_verdict_latency(self):
        self.configure(endpoint=self.answering.url, review_min_probability=0,
                       review_max_probability=1)
        value = self.unique("name=' union select 1 -- {n}")
        self.send([value], ip="198.51.100.81")
        found = wait_for(lambda: self.llm_findings_for(value), 20)
        self.assertTrue(found, "no llm finding")
        f = found[0]
        self.assertEqual(f["detector"], "llm")
        self.assertEqual(f["severity"], "medium")
        self.assertEqual(f["actor"], "ip:198.51.100.81")
        self.assertEqual(f["endpoint_template"], "/search")
        ev = f["evidence"]
        self.assertEqual(ev["model"], "standin-model")
        self.assertEqual(ev["verdict"], "sqli")
        self.assertIsInstance(ev["latency_ms"], int)
        self.assertGreaterEqual(ev["latency_ms"], 0)
        self.assertLess(ev["latency_ms"], 3000)
        self.assertIs(ev["cached"], False)
        self.assertEqual(ev["location"], "query")
        self.assertIn(ev["reason"], ("classifier_uncertain", "signature_unconfirmed"))
        # The prompt is never stored: only the verdict, and at most 64 bytes of the value.
        stored = json.dumps(f)
        self.assertNotIn("untrusted data", stored)
        self.assertNotIn("Label:", stored)
        body = self.answering.bodies[-1]
        self.assertIn(json.dumps(value), body["prompt"])
        self.assertEqual(body["n_predict"], 8)
        self.assertEqual(body["model"], "standin-model")
        # A benign verdict raises nothing but is counted.
        benign_before = self.m('boing_llm_verdicts_total{verdict="benign"}')
        plain = self.unique("plain words {n}")
        self.send([plain])
        self.assertTrue(wait_for(lambda: self.m('boing_llm_verdicts_total{verdict="benign"}')
                                 > benign_before, 20))
        self.assertEqual(self.llm_findings_for(plain), [])
        self.assertEqual(self.answering.problems, [])

    def test_identical_value_is_answered_from_the_cache(self):
        self.configure(endpoint=self.answering.url, review_min_probability=0,
                       review_max_probability=1)
        value = self.unique("<img src=x onerror=alert({n})>")
        hits = self.m("boing_llm_cache_hits_total")
        self.send([value], ip="198.51.100.82")
        self.assertTrue(wait_for(lambda: self.llm_findings_for(value), 20))
        self.send([value], ip="198.51.100.83")
        found = wait_for(lambda: (lambda f: f if len(f) == 2 else None)(
            self.llm_findings_for(value)), 20)
        self.assertTrue(found, "the second event got no llm finding")
        self.assertEqual(self.answering.count(value), 1, "the second value reached the model")
        self.assertEqual(sorted(f["evidence"]["cached"] for f in found), [False, True])
        self.assertEqual({f["evidence"]["verdict"] for f in found}, {"xss"})
        self.assertEqual(self.m("boing_llm_cache_hits_total"), hits + 1)

    def test_concurrency_is_bounded(self):
        """A slow stand-in (0.4 s per answer) counts the requests in flight at once."""
        self.configure(endpoint=self.slow.url, review_min_probability=0,
                       review_max_probability=1)
        values = [self.unique("' or sleep(1) -- {n}") for _ in range(10)]
        start = time.time()
        self.send(values, ip="198.51.100.84")
        self.assertTrue(wait_for(lambda: all(self.llm_findings_for(v) for v in values), 30),
                        "not every value got its verdict")
        elapsed = time.time() - start
        self.assertEqual(self.slow.max_concurrent, MAX_CONCURRENCY)
        self.assertEqual(sum(self.slow.count(v) for v in values), 10)
        # 10 answers of 0.4 s, two at a time: at least 2 s.
        self.assertGreaterEqual(elapsed, 10 * 0.4 / MAX_CONCURRENCY - 0.1)
        self.assertEqual(self.slow.problems, [])

    def test_hanging_endpoint_times_out_and_never_slows_detection(self):
        self.configure(endpoint=self.hanging.url, timeout_ms=15000, failure_threshold=1,
                       retry_after_ms=60000, review_min_probability=0, review_max_probability=1)
        timeouts = self.m('boing_llm_requests_total{outcome="timeout"}')
        fb_timeout = self.m('boing_llm_fallbacks_total{reason="timeout"}')
        fb_unavailable = self.m('boing_llm_fallbacks_total{reason="unavailable"}')
        ip = "198.51.100.85"
        suspicious = [self.unique(CLEAR_ATTACK) for _ in range(4)]
        self.send(suspicious, ip=ip)
        self.assertTrue(wait_for(lambda: self.hanging.in_flight == MAX_CONCURRENCY, 5),
                        "the requests did not reach the hanging stand-in")
        # While both requests hang, 20,000 more events go through detection.
        base = self.processed()
        n = 0
        for b in range(4):
            batch = [event(self.api["ingest_key"], client_ip=f"192.0.2.{i % 200}",
                           endpoint=f"/items/{b * 5000 + i}") for i in range(5000)]
            r = self.server.batch(batch)
            self.assertEqual(r.status, 200, r)
            n += len(batch)
        self.assertTrue(wait_for(lambda: self.processed() >= base + n, 14),
                        "detection did not get through the events while the LLM hung")
        self.assertEqual(self.hanging.in_flight, MAX_CONCURRENCY, "the LLM was not hanging")
        self.assertEqual(self.m("boing_llm_in_flight"), MAX_CONCURRENCY)
        self.assertEqual(self.m('boing_llm_requests_total{outcome="timeout"}'), timeouts,
                         "detection only got through once the requests timed out")
        # The signatures' findings stand meanwhile.
        self.assertEqual(self.count_for_ip("sqli", ip), len(suspicious))
        # Both requests time out; a failure pauses requests (failure_threshold 1), so the two
        # queued reviews are skipped, and the detector says why.
        self.assertTrue(wait_for(
            lambda: self.m('boing_llm_requests_total{outcome="timeout"}') >= timeouts + 2, 20))
        self.assertTrue(wait_for(lambda: self.m('boing_llm_fallbacks_total{reason="unavailable"}')
                                 >= fb_unavailable + 2, 5))
        self.assertEqual(self.m('boing_llm_fallbacks_total{reason="timeout"}'), fb_timeout + 2)
        self.assertEqual(self.hanging.requests, 2)
        llm = [d for d in self.server.get("/api/detectors", self.owner).json()["detectors"]
               if d["id"] == "llm"][0]
        self.assertIn("no answer within 15000 ms", llm["unavailable"] or "")
        self.assertEqual(self.count_for_ip("llm", ip), 0)
        self.assertAlive()

    def test_garbage_and_errors_fall_back(self):
        self.configure(endpoint=self.garbage.url, failure_threshold=100,
                       review_min_probability=0, review_max_probability=1)
        errors = self.m('boing_llm_requests_total{outcome="error"}')
        fb_error = self.m('boing_llm_fallbacks_total{reason="error"}')
        ip = "198.51.100.86"
        values = [self.unique(CLEAR_ATTACK) for _ in range(5)]
        self.send(values, ip=ip)
        self.assertTrue(wait_for(
            lambda: self.m('boing_llm_requests_total{outcome="error"}') >= errors + 5, 15))
        self.assertEqual(self.m('boing_llm_fallbacks_total{reason="error"}'), fb_error + 5)
        self.assertEqual(self.garbage.requests, 5)
        self.assertEqual(self.count_for_ip("llm", ip), 0)
        self.assertEqual(self.count_for_ip("sqli", ip), len(values),
                         "the signature findings must stand")
        # An endpoint nobody listens on: connection refused, counted the same way.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        try:
            self.configure(endpoint=f"http://127.0.0.1:{port}/completion")
            more = self.unique(CLEAR_ATTACK)
            self.send([more])
            self.assertTrue(wait_for(
                lambda: self.m('boing_llm_requests_total{outcome="error"}') >= errors + 6, 10))
        finally:
            s.close()
        self.assertAlive()

    def test_settings_are_validated(self):
        for config, field in (({"endpoint": "ftp://example/completion"}, "config.endpoint"),
                              ({"max_concurrency": 0}, "config.max_concurrency"),
                              ({"timeout_ms": 5}, "config.timeout_ms"),
                              ({"review_min_probability": 2}, "config.review_min_probability"),
                              ({"model": ""}, "config.model")):
            r = self.server.put("/api/detectors/llm", {"config": config}, self.admin)
            self.assertError(r, 400, field)
        d = self.server.get("/api/detectors", self.owner).json()["detectors"]
        llm = [x for x in d if x["id"] == "llm"][0]
        self.assertTrue(llm["implemented"])
        self.assertTrue(llm["enabled"])
        for key in ("endpoint", "model", "timeout_ms", "max_concurrency", "queue_max",
                    "cache_size", "review_min_probability", "review_max_probability"):
            self.assertIn(key, llm["config"])
        self.assertEqual(llm["config"]["max_concurrency"], MAX_CONCURRENCY)
        self.assertEqual(llm["config"]["cache_size"], 1000)


if __name__ == "__main__":
    unittest.main()
