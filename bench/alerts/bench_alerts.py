"""Alert benchmark (issue 5): event in -> alert out on /ws/alerts under background ingest load, and
notifications per second to a webhook receiver. Starts its own boing-server (fresh SQLite data dir)
and webhook receiver on 127.0.0.1; Python standard library plus Debian's python3-websocket; run
with /usr/bin/python3.

  BENCH_SECONDS     probe duration (default 30)
  BENCH_RATE        background events/s (default 10000), sent as JSON arrays of BENCH_BATCH
  BENCH_BATCH       events per background batch (default 500)
  BENCH_LOADERS     connections sending background batches, each paced (default 4)
  BENCH_PROBES_PER_S probe events per second (default 5); each opens a new alert (new client IP)
  BENCH_NOTIFY      alerts for the notification-rate run (default 1000)
  BOING_SERVER_BIN  server binary (default build/server/api/boing-server)
  BENCH_SERVER_LOG  file for the server's log lines (default: discarded)
  BENCH_SERVER_CPUS / BENCH_LOAD_CPUS  taskset lists for the server / this script (default 0 / 1)
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BOING_SERVER_BIN") or os.path.join(ROOT, "build/server/api/boing-server")
SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
RATE = int(os.environ.get("BENCH_RATE", "10000"))
BATCH = int(os.environ.get("BENCH_BATCH", "500"))
PROBES = float(os.environ.get("BENCH_PROBES_PER_S", "5"))
NOTIFY = int(os.environ.get("BENCH_NOTIFY", "1000"))
SERVER_CPUS = os.environ.get("BENCH_SERVER_CPUS", "0")
LOAD_CPUS = os.environ.get("BENCH_LOAD_CPUS", "1")
ADMIN, PASSWORD = "bench-admin", "Bench-password-1"


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    import math
    return v[max(1, math.ceil(q * len(v))) - 1]


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        self.conn.request(method, path, data, h)
        r = self.conn.getresponse()
        text = r.read()
        return r.status, (json.loads(text) if text else None)


class Receiver:
    def __init__(self):
        self.times = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    actor = json.loads(body)["alert"]["actor"]
                except (ValueError, KeyError, TypeError):
                    actor = ""
                with outer.lock:
                    if actor.startswith("ip:198.19."):  # the notification-rate batch only
                        outer.times.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def main():
    os.sched_setaffinity(0, {int(c) for c in LOAD_CPUS.split(",")})
    work = tempfile.mkdtemp(prefix="boing-bench-alerts-")
    receiver = Receiver()
    env = dict(os.environ, ADMIN_USERNAME=ADMIN, ADMIN_PASSWORD=PASSWORD, LOG_LEVEL="info",
               API_RATE_LIMIT_PER_MINUTE="10000000", AUTH_RATE_LIMIT_PER_MINUTE="100000",
               WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hook", WEBHOOK_SECRET="bench",
               ALERT_DELIVERY_QUEUE_MAX="100000", DETECTION_QUEUE_MAX="200000")
    for k in ("SMTP_HOST", "ALERT_EMAIL_TO", "SLACK_WEBHOOK_URL", "DB_HOST"):
        env.pop(k, None)
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPUS, BIN, "--listen", "127.0.0.1:0",
                             "--data-dir", work, "--threads", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"\"port\":(\d+)", line) if "\"listening\"" in line else None
            if m:
                port = int(m.group(1))
        if port is None:
            sys.exit("the server did not start")
        log_path = os.environ.get("BENCH_SERVER_LOG")
        log_file = open(log_path, "w") if log_path else None
        threading.Thread(target=lambda: [log_file.write(line) if log_file else None
                                         for line in proc.stdout], daemon=True).start()
        c = Client(port)
        _, login = c.call("POST", "/api/login", {"username": ADMIN, "password": PASSWORD})
        token = login["token"]
        _, api = c.call("POST", "/api/apis", {"name": "bench"}, token)
        key = api["ingest_key"]

        # Background load: pre-serialised batches at RATE events/s (clean events, one client IP).
        stop = threading.Event()
        sent = [0]
        lock = threading.Lock()
        body = json.dumps([{"timestamp": time.time(), "method": "GET", "endpoint": f"/items/{i}",
                            "client_ip": "192.0.2.200", "status_code": 200, "latency_ms": 4.0}
                           for i in range(BATCH)]).encode()

        loaders = int(os.environ.get("BENCH_LOADERS", "4"))

        def load():
            lc = Client(port)
            interval = BATCH * loaders / RATE
            nxt = time.time()
            while not stop.is_set():
                st, _ = lc.call("POST", "/api/ingest/batch", raw=body, headers={"X-Api-Key": key})
                if st == 200:
                    with lock:
                        sent[0] += BATCH
                nxt += interval
                delay = nxt - time.time()
                if delay > 0:
                    time.sleep(delay)
        threads = [threading.Thread(target=load, daemon=True) for _ in range(loaders)]

        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/alerts?token={token}", timeout=10)
        arrivals = {}

        def read_ws():
            while True:
                try:
                    m = json.loads(ws.recv())
                except Exception:
                    return
                if m.get("action") == "created":
                    arrivals.setdefault(m["alert"]["actor"], time.time())
        threading.Thread(target=read_ws, daemon=True).start()

        for t in threads:
            t.start()
        time.sleep(2)  # load running
        pc = Client(port)
        sent_at = {}
        acked_at = {}
        n = 0
        t_start = time.time()
        load_start = sent[0]
        while time.time() - t_start < SECONDS:
            n += 1
            actor = f"ip:198.18.{n // 250}.{n % 250 + 1}"
            ev = {"api_key": key, "timestamp": time.time(), "method": "GET",
                  "endpoint": "/search?q=1%27%20OR%20%271%27%3D%271", "client_ip": actor[3:],
                  "status_code": 200, "latency_ms": 5}
            sent_at[actor] = time.time()
            pc.call("POST", "/api/ingest", ev)
            acked_at[actor] = time.time()
            time.sleep(1 / PROBES)
        elapsed = time.time() - t_start
        bg_rate = (sent[0] - load_start) / elapsed
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join()
        lat = [(arrivals[a] - t) * 1000 for a, t in sent_at.items() if a in arrivals]
        missing = len(sent_at) - len(lat)
        slow = sorted(((arrivals[a] - t) * 1000, (acked_at[a] - t) * 1000, t - t_start)
                      for a, t in sent_at.items() if a in arrivals)[-8:]
        print("slowest probes (ms to alert, ms to ingest ack, sent at s):",
              ", ".join(f"{l:.0f}/{k:.0f} @ {t:.1f}" for l, k, t in slow))

        # Notifications per second: NOTIFY new alerts at once, time until the receiver has them all.
        time.sleep(2)
        with receiver.lock:
            receiver.times.clear()
        evs = [{"timestamp": time.time(), "method": "GET", "endpoint": "/search?q=%27%20OR%201%3D1--",
                "client_ip": f"198.19.{i // 250}.{i % 250 + 1}", "status_code": 200, "latency_ms": 5}
               for i in range(NOTIFY)]
        t0 = time.time()
        Client(port).call("POST", "/api/ingest/batch", evs, headers={"X-Api-Key": key})  # fresh
        # connection: the first one has been idle longer than the server's keep-alive timeout
        deadline = time.time() + 300
        while time.time() < deadline:
            with receiver.lock:
                got = len(receiver.times)
            if got >= NOTIFY:
                break
            time.sleep(0.05)
        with receiver.lock:
            times = sorted(receiver.times)
        notify_rate = len(times) / (times[-1] - t0) if times else 0
        ws.close()

        print("\n| measure | value | target |")
        print("|---|---|---|")
        print(f"| background ingest | {bg_rate:,.0f} events/s (asked {RATE:,}) | 10,000 events/s |")
        print(f"| event in → alert on /ws/alerts, {len(lat)} probes ({missing} missing) | "
              f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, max {max(lat or [0]):.1f} ms | "
              f"p99 ≤ 100 ms: {'met' if lat and pct(lat, 0.99) <= 100 and not missing else 'not met'} |")
        ack = [(acked_at[a] - t) * 1000 for a, t in sent_at.items()]
        print(f"| of which: probe answered 2xx by ingest (stored) | p50 {pct(ack, 0.5):.1f} ms, "
              f"p99 {pct(ack, 0.99):.1f} ms | — |")
        print(f"| webhook notifications, {len(times)} of {NOTIFY} new alerts | "
              f"{notify_rate:,.0f} notifications/s (first {((times[0] - t0) * 1000) if times else 0:.0f} ms "
              f"after the batch) | — |")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        receiver.httpd.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
