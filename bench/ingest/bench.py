"""JSON and text glue for bench/ingest/run.sh (Python standard library only; run with
/usr/bin/python3).

  bench.py apikey PORT USER PASSWORD        log in, create an API "bench", print its ingest key
  bench.py wrk FILE                         parse a wrk --latency output → shell assignments
  bench.py sqlite-count DB                  SELECT COUNT(*) FROM events
  bench.py rss FILE                         summarise "seconds rss_kb" samples → shell assignments
  bench.py cpu-snap PID FILE                save CPU counters of cores 0-1 and PID's threads
  bench.py cpu-diff BEFORE AFTER            CPU used between two snapshots → shell assignments
  bench.py report RESULTS                   print the results table (RESULTS: key=value lines)
"""
import os
import time
import json
import re
import sqlite3
import sys
import urllib.request


def apikey(port, user, password):
    base = f"http://127.0.0.1:{port}"

    def post(path, body, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(base + path, json.dumps(body).encode(), headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    token = post("/api/login", {"username": user, "password": password})["token"]
    print(post("/api/apis", {"name": "bench"}, token)["ingest_key"])


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def wrk(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {}
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m),", text)
    out["requests"] = int(m.group(1)) if m else 0
    out["duration_s"] = to_ms(m.group(2) + m.group(3)) / 1000.0 if m else 0.0
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        out["p%s_ms" % pct] = round(to_ms(m.group(1)), 3) if m else float("nan")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    for key in ("ok", "bad", "accepted", "rejected", "body_bytes", "wrk_cpu_pct"):
        m = re.search(r"^bench_%s (\d+)" % key, text, re.M)
        out[key] = int(m.group(1)) if m else 0
    # Only 2xx answers count: rate of good requests over the measured duration.
    out["ok_rps"] = round(out["ok"] / out["duration_s"], 1) if out["duration_s"] else 0.0
    for k, v in out.items():
        print(f"{k}={v}")


def sqlite_count(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    print(con.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def rss(path):
    samples = []  # (seconds, VmRSS kB, RssAnon kB)
    for line in open(path):
        parts = line.split()
        if len(parts) == 3:
            samples.append((float(parts[0]), int(parts[1]), int(parts[2])))
    if not samples:
        print("rss_n=0")
        return
    kb = [s[1] for s in samples]
    anon = [s[2] for s in samples]
    n = len(kb)
    out = {"rss_n": n, "rss_start_kb": kb[0], "rss_max_kb": max(kb), "rss_end_kb": kb[-1],
           "anon_start_kb": anon[0], "anon_max_kb": max(anon), "anon_end_kb": anon[-1]}
    # Plateau: the peak of the last quarter of the run is not above the peak of the second quarter
    # by more than 5% (or 4 MiB, whichever is larger). The least-squares slope over the second
    # half is reported next to it.
    q = max(1, n // 4)

    def plateau(series, name):
        second_q = series[q:2 * q] or series
        last_q = series[-q:]
        out[f"{name}_q2_max_kb"] = max(second_q)
        out[f"{name}_q4_max_kb"] = max(last_q)
        half = samples[n // 2:]
        vals = series[n // 2:]
        slope = 0.0
        if len(half) >= 2:
            xs = [s[0] for s in half]
            ys = [v / 1024.0 for v in vals]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            den = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
        out[f"{name}_slope_mib_per_min"] = round(slope * 60, 2)
        growth = max(last_q) - max(second_q)
        out[f"{name}_plateau"] = "yes" if growth <= max(0.05 * max(second_q), 4096) else "no"

    plateau(kb, "rss")
    plateau(anon, "anon")
    for k, v in out.items():
        print(f"{k}={v}")


def cpu_snap(pid, path):
    snap = {"t": time.time(), "cores": {}, "threads": {}}
    for line in open("/proc/stat"):
        parts = line.split()
        if re.fullmatch(r"cpu\d+", parts[0]):
            v = [int(x) for x in parts[1:]]
            # user nice system idle iowait irq softirq steal ...
            snap["cores"][parts[0]] = {"busy": v[0] + v[1] + v[2] + v[5] + v[6] + v[7],
                                      "total": sum(v[:8])}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                st = open(f"/proc/{pid}/task/{tid}/stat").read()
            except OSError:
                continue
            rest = st[st.rindex(")") + 2:].split()
            # fields after the comm: state(3) ... utime(14) stime(15) ... processor(39)
            try:
                wait_ns = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[1])
            except (OSError, IndexError, ValueError):
                wait_ns = 0
            snap["threads"][tid] = {"ticks": int(rest[11]) + int(rest[12]), "cpu": int(rest[36]),
                                    "wait_ns": wait_ns}
    except OSError:
        pass
    json.dump(snap, open(path, "w"))


def cpu_diff(before, after):
    a, b = json.load(open(before)), json.load(open(after))
    hz = os.sysconf("SC_CLK_TCK")
    wall = b["t"] - a["t"]
    out = {"wall_s": round(wall, 2)}
    proc = 0
    wait_ns = 0
    per_thread = []
    for tid, t in b["threads"].items():
        before = a["threads"].get(tid, {"ticks": 0, "wait_ns": 0})
        wait_ns += t.get("wait_ns", 0) - before.get("wait_ns", 0)
        d = t["ticks"] - before["ticks"]
        proc += d
        if d:
            per_thread.append(d)
    out["proc_cpu_pct"] = round(100.0 * proc / hz / wall, 1) if wall else 0.0
    # Time the process's threads were runnable but waited for a CPU (schedstat): how much other
    # programs (or its own threads) held it off its core.
    out["runq_wait_pct"] = round(100.0 * wait_ns / 1e9 / wall, 1) if wall else 0.0
    out["threads"] = len(b["threads"])
    out["thread_cpu_pct"] = "/".join(f"{100.0 * d / hz / wall:.0f}"
                                     for d in sorted(per_thread, reverse=True)[:4]) or "0"
    for core in ("cpu0", "cpu1"):
        if core in a["cores"] and core in b["cores"]:
            busy = b["cores"][core]["busy"] - a["cores"][core]["busy"]
            total = b["cores"][core]["total"] - a["cores"][core]["total"]
            out[core + "_busy_pct"] = round(100.0 * busy / total, 1) if total else 0.0
    # Busy time on core 0 that was not the measured process: other programs on this machine.
    out["cpu0_other_pct"] = round(max(0.0, out.get("cpu0_busy_pct", 0.0) - out["proc_cpu_pct"]), 1)
    out["loadavg"] = open("/proc/loadavg").read().split()[0]
    for k, v in out.items():
        print(f"{k}={v}")


def fmt_int(x):
    return f"{float(x):,.0f}"


def report(path):
    r = {}
    for line in open(path):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            r[k] = v

    def f(k, default=0.0):
        try:
            return float(r.get(k, default))
        except ValueError:
            return default

    def mib(k):
        return f"{f(k) / 1024:.1f} MiB"

    def cpu(key):
        return (f"{r.get(key + '_proc_cpu_pct')}% (threads {r.get(key + '_thread_cpu_pct')}); "
                f"waiting for a CPU {r.get(key + '_runq_wait_pct')}%; wrk "
                f"{r.get(key + '_wrk_cpu_pct')}%")

    def per_cpu_s(key, per_request=1):
        used = f(key + "_proc_cpu_pct") / 100.0 * f(key + "_wall_s")
        return f(key + "_ok") * per_request / used if used else 0.0

    rows = []
    n_rps = f("nginx_ok_rps")
    n_cpu, s_cpu = per_cpu_s("nginx"), per_cpu_s("single")
    rows.append(("nginx `return 204` (baseline), 1 worker", f"{fmt_int(n_rps)} req/s",
                 f"{r.get('nginx_p99_ms')} ms",
                 cpu("nginx") + f"; {fmt_int(n_cpu)} requests per nginx CPU-second",
                 f"non-2xx {r.get('nginx_bad')}, socket errors {r.get('nginx_socket_errors')}",
                 "—", "—"))
    s_rps = f("single_ok_rps")
    ratio = s_rps / n_rps if n_rps else 0.0
    rows.append(("Boing single-event ingest, SQLite, 1 thread", f"{fmt_int(s_rps)} req/s "
                 f"(**{ratio:.0%} of nginx**)", f"{r.get('single_p99_ms')} ms",
                 cpu("single") + f"; {fmt_int(s_cpu)} requests per server CPU-second "
                 f"({s_cpu / n_cpu if n_cpu else 0:.0%} of nginx's)",
                 f"non-2xx {r.get('single_bad')}, socket errors {r.get('single_socket_errors')}; "
                 f"stored {r.get('single_stored')} ≥ 2xx {r.get('single_ok')}: "
                 f"{r.get('single_stored_ok')}", "≥ 50% of nginx",
                 "**met**" if ratio >= 0.5 else "**not met**"))
    for key, label, target in (("batch", "SQLite", 200000), ("mysql", "MariaDB", 50000)):
        if r.get(f"{key}_skipped"):
            rows.append((f"Boing batch ingest, {label}", "skipped: " + r[f"{key}_skipped"], "—",
                         "—", "—", f"≥ {fmt_int(target)} events/s", "**not measured**"))
            continue
        eps = f(f"{key}_eps")
        rows.append((f"Boing batch ingest ({r.get('batch_size')}/batch), {label}, 1 thread",
                     f"**{fmt_int(eps)} events/s** ({f(f'{key}_ok_rps'):.1f} batches/s; "
                     f"{eps / target:.0%} of target)", f"{r.get(key + '_p99_ms')} ms",
                     cpu(key) + f"; {fmt_int(per_cpu_s(key, f('batch_size')))} events per "
                     "server CPU-second" + (f"; mariadbd {r.get(key + '_db_proc_cpu_pct')}% "
                                            f"(waiting for a CPU {r.get(key + '_db_runq_wait_pct')}%)"
                                            if key + "_db_proc_cpu_pct" in r else ""),
                     f"non-2xx {r.get(key + '_bad')}, rejected items {r.get(key + '_rejected')}; "
                     f"stored {r.get(key + '_stored')} ≥ accepted {r.get(key + '_accepted')}: "
                     f"{r.get(key + '_stored_ok')}", f"≥ {fmt_int(target)} events/s",
                     "**met**" if eps >= target else "**not met**"))
    if r.get("soak_skipped"):
        rows.append(("RSS under batch load", "skipped: " + r["soak_skipped"], "—", "—", "—",
                     "plateau", "**not measured**"))
    else:
        rows.append((f"RSS, {r.get('soak_seconds')} s batch load (SQLite)",
                     f"RSS start {mib('rss_start_kb')}, max {mib('rss_max_kb')}, end "
                     f"{mib('rss_end_kb')} (heap RssAnon: start {mib('anon_start_kb')}, max "
                     f"{mib('anon_max_kb')}, end {mib('anon_end_kb')}); "
                     f"{fmt_int(f('soak_eps'))} events/s sustained",
                     f"{r.get('soak_p99_ms')} ms", cpu("soak"),
                     f"peak in 2nd quarter {mib('rss_q2_max_kb')}, in last quarter "
                     f"{mib('rss_q4_max_kb')}, slope over 2nd half {r.get('rss_slope_mib_per_min')}"
                     f" MiB/min (RssAnon: {mib('anon_q2_max_kb')} → {mib('anon_q4_max_kb')}, "
                     f"{r.get('anon_slope_mib_per_min')} MiB/min, plateau "
                     f"{r.get('anon_plateau')}); non-2xx {r.get('soak_bad')}; stored {r.get('soak_stored')} ≥ "
                     f"accepted {r.get('soak_accepted')}: {r.get('soak_stored_ok')}; server alive "
                     f"after: {r.get('soak_alive')}", "RSS plateaus",
                     "**met**" if r.get("rss_plateau") == "yes" else "**not met**"))
    print("| run | throughput (2xx only) | p99 | CPU of the program under test | checks | target "
          "| status |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    busy = [(k[:-len("_runq_wait_pct")], f(k)) for k in r if k.endswith("_runq_wait_pct")]
    busy = [(k, v) for k, v in busy if v > 10.0]
    print()
    print("CPU: share of one core the program under test used (its busiest threads); \"waiting "
          "for a CPU\": time its threads were runnable but not running (schedstat, summed over "
          "threads), i.e. held off by other programs or by its own other threads on the same "
          "core; wrk: the load generator's CPU on core 1.")
    if busy:
        print("NOTE: the program under test waited for a CPU for more than 10% of " + ", ".join(
            f"{k} ({v:.0f}%)" for k, v in busy) + ". With BENCH_PRIO=rr other programs get at "
            "most ~5% of the core, so this is mostly its own threads queueing behind each other; "
            "without it, other programs on the machine may have held it off.")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"apikey": apikey, "wrk": wrk, "sqlite-count": sqlite_count, "rss": rss,
     "cpu-snap": cpu_snap, "cpu-diff": cpu_diff,
     "report": report}[cmd](*args)


if __name__ == "__main__":
    main()
