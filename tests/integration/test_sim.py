"""boing-sim: each abusive scenario is flagged by the detector it exists for, benign traffic (over
100,000 events) raises nothing above low severity, the same seed gives the same events, and a live
run through /api/ingest/batch is accepted in full and produces findings on the server."""
import json
import os
import subprocess
import tempfile
import time
import unittest

from harness import BINARY, ServerTestCase

SIM = os.environ.get("BOING_SIM_BIN") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "build/tools/sim/boing-sim")
RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def simulate(*args):
    """Runs boing-sim to NDJSON; returns (event lines, labels)."""
    with tempfile.TemporaryDirectory() as tmp:
        labels = os.path.join(tmp, "labels")
        r = subprocess.run([SIM, "--out", "-", "--labels", labels, "--start", "1767225600", *args],
                           capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr.decode()
        with open(labels) as fh:
            return r.stdout.decode().splitlines(), fh.read().splitlines()


def analyze(lines):
    r = subprocess.run([BINARY, "analyze"], input=("\n".join(lines) + "\n").encode(),
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    out = [json.loads(line)["findings"] for line in r.stdout.decode().splitlines()]
    assert len(out) == len(lines), f"{len(out)} answers for {len(lines)} events"
    return out


class ScenarioTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        r = subprocess.run([SIM, "--list"], capture_output=True, timeout=30, check=True)
        cls.scenarios = json.loads(r.stdout)
        names = ",".join(s["name"] for s in cls.scenarios)
        cls.lines, cls.labels = simulate("--scenario", names, "--events", "30000", "--seed", "7")
        cls.findings = analyze(cls.lines)

    def test_every_scenario_is_flagged_by_its_detector(self):
        fired = {}
        for label, found in zip(self.labels, self.findings):
            for f in found:
                fired.setdefault(label, set()).add(f["detector"])
        checked = 0
        for s in self.scenarios:
            if not s["expected_detector"]:
                continue  # no implemented detector covers it yet (documented in --list)
            checked += 1
            self.assertIn(s["expected_detector"], fired.get(s["name"], set()),
                          f"{s['name']}: detectors that fired: {fired.get(s['name'])}")
        self.assertGreaterEqual(checked, 9)

    def test_background_events_in_the_mixed_run_stay_at_or_below_low(self):
        bad = [(json.loads(line)["endpoint"], f["detector"], f["severity"])
               for line, label, found in zip(self.lines, self.labels, self.findings)
               if label == "benign" for f in found if RANK[f["severity"]] > RANK["low"]]
        # Attack traffic can push shared per-endpoint state; benign callers must not be blamed.
        self.assertEqual(bad, [])

    def test_labels_cover_every_event(self):
        self.assertEqual(len(self.labels), len(self.lines))
        self.assertEqual(self.labels.count("benign"), 30000)
        self.assertEqual(set(self.labels) - {"benign"}, {s["name"] for s in self.scenarios})


class BenignReplayTest(unittest.TestCase):
    def test_100k_benign_events_raise_nothing_above_low(self):
        lines, labels = simulate("--events", "100000", "--seed", "11")
        self.assertEqual(len(lines), 100000)
        self.assertEqual(set(labels), {"benign"})
        counts = {}
        for found in analyze(lines):
            for f in found:
                counts[(f["detector"], f["severity"])] = counts.get((f["detector"], f["severity"]), 0) + 1
        above = {k: v for k, v in counts.items() if RANK[k[1]] > RANK["low"]}
        self.assertEqual(above, {}, f"all findings: {counts}")

    def test_same_seed_same_events_other_seed_other_events(self):
        a, _ = simulate("--events", "500", "--scenario", "sqli", "--seed", "3")
        b, _ = simulate("--events", "500", "--scenario", "sqli", "--seed", "3")
        c, _ = simulate("--events", "500", "--scenario", "sqli", "--seed", "4")
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_bad_arguments_are_named(self):
        r = subprocess.run([SIM, "--scenario", "nosuch"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"unknown scenario: nosuch", r.stderr)
        r = subprocess.run([SIM, "--server", "http://127.0.0.1:1"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--api-key", r.stderr)


class LiveIngestTest(ServerTestCase):
    def test_sim_through_ingest_is_accepted_and_detected(self):
        owner = self.server.register("simowner")
        api = self.server.create_api(owner, "sim-api")
        r = subprocess.run([SIM, "--server", f"http://127.0.0.1:{self.server.port}",
                            "--api-key", api["ingest_key"], "--events", "3000",
                            "--scenario", "sqli,brute_force", "--batch", "400"],
                           capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        summary = json.loads(r.stderr.decode().strip().splitlines()[-1])
        self.assertEqual(summary["accepted"], summary["events"])
        self.assertEqual(summary["events"], 3000 + 24 + 45)
        self.assertEqual(summary["rejected"], 0)
        logs = self.server.get(f"/api/logs?api_id={api['id']}&limit=1", owner).json()["logs"]
        self.assertTrue(logs)

        def found(detector):
            r = self.server.get(f"/api/findings?api_id={api['id']}&detector={detector}", owner)
            self.assertEqual(r.status, 200)
            return r.json()["findings"]

        deadline = time.time() + 30
        while time.time() < deadline and not (found("sqli") and found("brute_force")):
            time.sleep(0.5)
        self.assertTrue(found("sqli"))
        self.assertTrue(found("brute_force"))


if __name__ == "__main__":
    unittest.main()
