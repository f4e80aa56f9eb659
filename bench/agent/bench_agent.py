#!/usr/bin/env python3
"""Driver of bench/agent/run.sh (see bench/README.md). Standard library only; /usr/bin/python3."""
import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402  (starts boing-server; stdlib only)

LUA = os.path.join(ROOT, "tests", "bpf", "wrk_paths.lua")
NGINX_CPU, LOAD_CPU = "0", "1"
HZ = os.sysconf("SC_CLK_TCK")
TOKEN = "bench-bearer-token-not-printed"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_s(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / HZ


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def to_ms(v):
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", v)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--out", default="/tmp/boing-bench-agent.txt")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="boing-bench-agent-")
    os.chmod(work, 0o755)  # nginx workers run as www-data
    cg_root = next(line.split()[1] for line in open("/proc/self/mounts")
                   if line.split()[2] == "cgroup2")
    cgroup = os.path.join(cg_root, f"boing-bench-{os.getpid()}")
    os.makedirs(cgroup)
    procs, server, agent = [], None, None
    try:
        # A private copy of each binary: a rebuild during the run must not change it.
        shutil.copy(a.agent, os.path.join(work, "boing-agent"))
        shutil.copy(a.server, os.path.join(work, "boing-server"))
        harness.BINARY = os.path.join(work, "boing-server")
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        http_port, https_port, metrics_port = free_port(), free_port(), free_port()
        with open(os.path.join(HERE_CONF), encoding="utf-8") as f:
            conf = f.read()
        for k, v in {"@DIR@": work, "@HTTP@": http_port, "@HTTPS@": https_port,
                     "@CERT@": cert, "@KEY@": key}.items():
            conf = conf.replace(k, str(v))
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(conf)

        def enter_cgroup():
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

        nginx_cmd = ["taskset", "-c", NGINX_CPU, "/usr/sbin/nginx", "-c",
                     os.path.join(work, "nginx.conf"), "-p", work]
        procs.append(subprocess.Popen(nginx_cmd, preexec_fn=enter_cgroup))
        time.sleep(1)
        os.makedirs(os.path.join(work, "server"))
        server = harness.Server(data_dir=os.path.join(work, "server")).start()
        subprocess.run(["taskset", "-a", "-p", "-c", LOAD_CPU, str(server.proc.pid)], check=True,
                       capture_output=True)
        admin = server.admin_token()
        et = server.post("/api/agents", {"name": "bench"}, admin).json()["enrollment_token"]

        def nginx_pids():
            with open(os.path.join(cgroup, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]

        commands = [" ".join(nginx_cmd) + "  (config: bench/agent/nginx.conf.in)",
                    f"boing-server (SQLite): taskset -a -p -c {LOAD_CPU} <pid>"]
        results = {}

        def run(name, scheme):
            port = http_port if scheme == "http" else https_port
            cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{a.connections}",
                   f"-d{a.seconds}s", "--latency", "-s", LUA,
                   f"{scheme}://127.0.0.1:{port}", "--", TOKEN, f"/b/{name}"]
            commands.append(f"{name}: " + " ".join(cmd).replace(TOKEN, "TOKEN"))
            np = nginx_pids()
            c0 = (cpu_s(np), cpu_s([agent.pid]) if agent else 0, cpu_s([server.proc.pid]))
            log(f"{name}: wrk {scheme} {a.seconds}s")
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 60)
            if out.returncode != 0:
                raise SystemExit(f"wrk failed: {out.stderr}")
            c1 = (cpu_s(np), cpu_s([agent.pid]) if agent else 0, cpu_s([server.proc.pid]))
            t = out.stdout
            r = {"requests": int(re.search(r"(\d+) requests in", t).group(1)),
                 "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", t).group(1)),
                 "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1)),
                 "non2xx": int((re.search(r"Non-2xx or 3xx responses: (\d+)", t) or
                                re.match(r"()", "0")).group(1) or 0),
                 "nginx_cpu_s": c1[0] - c0[0], "agent_cpu_s": c1[1] - c0[1],
                 "server_cpu_s": c1[2] - c0[2]}
            results[name] = r
            log(f"{name}: {r['rps']:.0f} req/s, p99 {r['p99_ms']} ms")

        run("base-http", "http")
        run("base-https", "https")
        agent_cmd = ["taskset", "-c", LOAD_CPU, os.path.join(work, "boing-agent"),
                     "--cgroup", cgroup, "--server", f"http://127.0.0.1:{server.port}",
                     "--enroll-token", "ENROLL_TOKEN", "--state-dir", os.path.join(work, "state"),
                     "--metrics-listen", f"127.0.0.1:{metrics_port}", "--batch-size", "1000",
                     "--batch-interval-ms", "200"]
        commands.append("agent: " + " ".join(agent_cmd))
        agent_err = open(os.path.join(work, "agent.err"), "w")
        agent = subprocess.Popen([et if x == "ENROLL_TOKEN" else x for x in agent_cmd],
                                 stdout=subprocess.DEVNULL, stderr=agent_err)
        deadline = time.time() + 60
        while "capturing" not in open(os.path.join(work, "agent.err")).read():
            if agent.poll() is not None or time.time() > deadline:
                raise SystemExit("agent did not start:\n" + open(agent_err.name).read())
            time.sleep(0.2)
        rss0 = status_kb(agent.pid, "VmRSS")
        run("agent-http", "http")
        run("agent-https", "https")
        rss_end, hwm = status_kb(agent.pid, "VmRSS"), status_kb(agent.pid, "VmHWM")
        # Let the uplink drain the spool, then compare what nginx served with what was stored.
        deadline = time.time() + 300
        while time.time() < deadline:
            m = metrics(metrics_port)
            if m.get("boing_agent_spool_pending_events", 1) == 0:
                break
            time.sleep(1)
        m = metrics(metrics_port)
        # The same sensor with its events written to /dev/null: capture, parsing and serialising
        # without the uplink and without boing-server (which shares the load core) — the cost of
        # the sensor itself on this 2-core machine. The uplinking agent is stopped first (its
        # probes would run too).
        agent.terminate()
        agent.wait(30)
        sensor_cmd = ["taskset", "-c", LOAD_CPU, os.path.join(work, "boing-agent"), "--stdout",
                      "--cgroup", cgroup]
        commands.append("sensor only: " + " ".join(sensor_cmd) + " > /dev/null")
        sensor_err = open(os.path.join(work, "sensor.err"), "w")
        agent = subprocess.Popen(sensor_cmd, stdout=subprocess.DEVNULL, stderr=sensor_err)
        deadline = time.time() + 60
        while "capturing" not in open(sensor_err.name).read():
            if agent.poll() is not None or time.time() > deadline:
                raise SystemExit("sensor did not start:\n" + open(sensor_err.name).read())
            time.sleep(0.2)
        run("sensor-http", "http")
        run("sensor-https", "https")
        procs[0].terminate()  # nginx flushes its access log buffer on exit
        procs[0].wait(30)
        served = {}
        with open(os.path.join(work, "access.log")) as f:
            for line in f:
                run_name = line.split("/", 3)[2] if line.startswith("/b/") else None
                served[run_name] = served.get(run_name, 0) + 1
        db = sqlite3.connect(f"file:{server.data_dir}/boing.db?mode=ro", uri=True, timeout=30)
        stored = {}
        for name in ("agent-http", "agent-https"):
            stored[name] = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT endpoint) FROM events WHERE endpoint LIKE ?",
                (f"/b/{name}/%",)).fetchone()
        db.close()
        kdrops = {k.split('"')[1]: int(v) for k, v in m.items()
                  if k.startswith("boing_agent_kernel_drops_total")}
        adrops = {k.split('"')[1]: int(v) for k, v in m.items()
                  if k.startswith("boing_agent_events_dropped_total")}

        lines = []
        P = lines.append
        uptime = open("/proc/loadavg").read().split()[:3]
        cpu_model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                         if line.startswith("model name"))
        P(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        P(f"machine: {os.cpu_count()} cores, {cpu_model}, kernel {os.uname().release}, "
          f"load average at the end {' '.join(uptime)}")
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        P(f"commit: {commit}; wrk -t1 -c{a.connections} -d{a.seconds}s keep-alive, one path per "
          "request; nginx core 0; wrk, agent and boing-server core 1")
        P("")
        P("| run | req/s | ratio | target | p99 | nginx CPU µs/req | agent CPU µs/req | "
          "served (nginx log) | stored once (server) | completeness |")
        P("|---|---|---|---|---|---|---|---|---|---|")
        verdict = []
        for scheme, target in (("http", 0.95), ("https", 0.85)):
            b, w = results[f"base-{scheme}"], results[f"agent-{scheme}"]
            ratio = w["rps"] / b["rps"]
            nb = b["nginx_cpu_s"] / b["requests"] * 1e6
            nw = w["nginx_cpu_s"] / w["requests"] * 1e6
            aw = w["agent_cpu_s"] / w["requests"] * 1e6
            sv = served.get(f"agent-{scheme}", 0)
            st, distinct = stored[f"agent-{scheme}"]
            comp = distinct / sv if sv else 0
            P(f"| {scheme} without agent | {b['rps']:,.0f} | — | — | {b['p99_ms']:.2f} ms | "
              f"{nb:.1f} | — | {served.get(f'base-{scheme}', 0):,} | — | — |")
            P(f"| {scheme} with agent | {w['rps']:,.0f} | **{ratio:.1%}** | ≥ {target:.0%} | "
              f"{w['p99_ms']:.2f} ms | {nw:.1f} (+{nw - nb:.1f}) | {aw:.1f} | {sv:,} | "
              f"{distinct:,} ({st - distinct} duplicates) | **{comp:.2%}** |")
            verdict.append(f"{scheme}: throughput {ratio:.1%} of baseline (target ≥ {target:.0%}): "
                           f"{'met' if ratio >= target else 'NOT met'}; completeness {comp:.2%} "
                           f"at {w['rps']:,.0f} req/s (target 100% up to 20,000 req/s): "
                           f"{'met' if comp == 1 else ('NOT met' if w['rps'] <= 20000 else 'above 20k req/s')}")
            verdict.append(f"  CPU added per request: {nw - nb:.1f} µs in nginx (probes run in its "
                           f"context) + {aw:.1f} µs in the agent = {nw - nb + aw:.1f} µs; agent "
                           f"{w['agent_cpu_s'] / a.seconds:.0%} of a core = "
                           f"{w['agent_cpu_s'] / a.seconds / (w['rps'] / 1e4):.2f} cores per 10,000 "
                           f"req/s; boing-server {w['server_cpu_s'] / a.seconds:.0%} of core "
                           f"{LOAD_CPU}")
        for scheme in ("http", "https"):
            b, w = results[f"base-{scheme}"], results[f"sensor-{scheme}"]
            nb = b["nginx_cpu_s"] / b["requests"] * 1e6
            nw = w["nginx_cpu_s"] / w["requests"] * 1e6
            aw = w["agent_cpu_s"] / w["requests"] * 1e6
            P(f"| {scheme} with the sensor only (events to /dev/null) | {w['rps']:,.0f} | "
              f"**{w['rps'] / b['rps']:.1%}** | — | {w['p99_ms']:.2f} ms | {nw:.1f} "
              f"(+{nw - nb:.1f}) | {aw:.1f} | — | — | — |")
        P("")
        lines += verdict
        P(f"agent RSS: {rss0 / 1024:.1f} MiB before load, {rss_end / 1024:.1f} MiB after, "
          f"peak (VmHWM) {hwm / 1024:.1f} MiB")
        P("kernel drops: " + ", ".join(f"{k}={v}" for k, v in sorted(kdrops.items())))
        P("agent drops: " + ", ".join(f"{k}={v}" for k, v in sorted(adrops.items())))
        P("")
        P("commands:")
        lines += ["  " + c for c in commands]
        report = "\n".join(lines)
        print(report)
        with open(a.out, "w") as f:
            f.write(report + "\n")
        log(f"report saved to {a.out}")
    finally:
        if agent and agent.poll() is None:
            agent.terminate()
            agent.wait(30)
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        if server:
            server.kill()
        for _ in range(50):
            try:
                os.rmdir(cgroup)
                break
            except OSError:
                time.sleep(0.1)
        if a.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


HERE_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx.conf.in")

if __name__ == "__main__":
    main()
