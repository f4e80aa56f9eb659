#!/usr/bin/python3
"""Scale-out benchmark (BUS_URL): ingest throughput of one boing-server (without and with the bus) vs two, each pinned to its
own core, on one MariaDB and one JetStream nats-server (both unpinned: this machine has two cores,
so they share them with the servers and with wrk); then the time for a SIGKILLed instance's
partitions to move to the survivors, over several kills.

    bash bench/scaleout/run.sh          # or: /usr/bin/python3 bench/scaleout/bench_scaleout.py

Settings (environment): BENCH_SECONDS (15) per throughput run, BENCH_KILLS (3) failovers,
BENCH_LEASE_SECONDS (10) the lease TTL, BENCH_PARTITIONS (16).
Throughput counts only events acknowledged with 2xx (batch.lua sums "accepted"), and checks the
events table holds at least that many rows."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
os.environ["BOING_IT_BACKEND"] = "mysql"

SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
KILLS = int(os.environ.get("BENCH_KILLS", "3"))
LEASE = int(os.environ.get("BENCH_LEASE_SECONDS", "10"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "16"))
MDB_DIR = "/tmp/boing-bench-scaleout-mdb"


def start_mariadb():
    out = subprocess.run(["bash", os.path.join(ROOT, "tests/support/mariadb.sh"), "start", MDB_DIR],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        k, v = line[len("export "):].split("=", 1)
        os.environ[k] = v


def pin(server, core):
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(server.proc.pid)],
                   capture_output=True, check=True)


def wrk(port, key, core=None):
    cmd = ["wrk", "-t1", "-c8", f"-d{SECONDS}s", "--latency", "-s",
           os.path.join(ROOT, "bench/ingest/batch.lua"), f"http://127.0.0.1:{port}"]
    if core is not None:
        cmd = ["taskset", "-c", str(core)] + cmd
    env = dict(os.environ, BOING_API_KEY=key, BATCH_SIZE="500")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)


def accepted(out):
    m = re.search(r"^bench_accepted (\d+)", out, re.M)
    if not m:
        raise SystemExit("no accepted count in wrk output:\n" + out)
    return int(m.group(1))


def throughput(n, common, db_name_holder):
    from harness import Server
    servers = []
    try:
        for i in range(n):
            env = dict(common, BUS_INSTANCE_ID=f"b{i}")
            s = Server(env, db_name=db_name_holder.get("db"))
            s.start()
            if "db" not in db_name_holder:
                db_name_holder["db"] = s.db_name
                db_name_holder["owner"] = s
            pin(s, i)
            servers.append(s)
        admin = servers[0].admin_token()
        key = servers[0].create_api(admin, f"bench-{n}-{time.time_ns()}")["ingest_key"]
        before = int(servers[0].db_query("SELECT COUNT(*) FROM events")[0][0])
        # One wrk per server; with one server it gets core 1 to itself, with two it runs unpinned.
        procs = [wrk(s.port, key, 1 if n == 1 else None) for s in servers]
        outs = [p.communicate()[0] for p in procs]
        total = sum(accepted(o) for o in outs)
        time.sleep(1)
        stored = int(servers[0].db_query("SELECT COUNT(*) FROM events")[0][0]) - before
        assert stored >= total, f"{stored} stored < {total} acknowledged"
        return total / SECONDS, total, stored
    finally:
        for s in servers:
            s.stop()
            if s is not db_name_holder.get("owner"):
                s.cleanup()


def failover(common, db_name_holder):
    from harness import Server
    servers = [Server(dict(common, BUS_INSTANCE_ID=f"f{i}"), db_name=db_name_holder["db"]).start()
               for i in range(3)]
    try:
        def leases():
            now = int(time.time() * 1000)
            rows = servers[0].db_query("SELECT part, holder, expires_at_ms FROM bus_leases")
            return {int(p): (h if int(e) >= now else "") for p, h, e in rows if int(p) < PARTITIONS}

        def balanced(names):
            held = leases()
            share = -(-PARTITIONS // len(names))
            return (len(held) == PARTITIONS and all(h in names for h in held.values())
                    and all(list(held.values()).count(n) <= share for n in names))

        results = []
        for k in range(KILLS):
            live = {f"f{i}" for i, s in enumerate(servers) if s.alive()}
            deadline = time.time() + 6 * LEASE
            while not balanced(live) and time.time() < deadline:
                time.sleep(0.2)
            victim = servers[k % 3]
            name = f"f{k % 3}"
            parts = [p for p, h in leases().items() if h == name]
            t0 = time.time()  # before the signal: the measured move can only be longer
            victim.kill()
            moved = None
            while time.time() - t0 < 4 * LEASE:
                held = leases()
                if all(held.get(p) not in ("", name) for p in parts):
                    # The taker's clock when it took the last of them.
                    taken = servers[0].db_query(  # MariaDB: works with servers[0] killed too
                        "SELECT MAX(acquired_at_ms) FROM bus_leases WHERE part IN (" +
                        ",".join(map(str, parts)) + ")")[0][0]
                    moved = int(taken) / 1000 - t0
                    break
                time.sleep(0.05)
            if moved is None:
                raise SystemExit(f"kill {k + 1}: {name}'s partitions did not move in {4 * LEASE} s")
            results.append((len(parts), moved))
            print(f"kill {k + 1}: {name} held {len(parts)} partitions, moved after {moved:.2f} s",
                  flush=True)
            victim.start()
        return results
    finally:
        for s in servers:
            s.stop()
            s.cleanup()


def main():
    if not shutil.which("wrk") or not shutil.which("nats-server"):
        raise SystemExit("needs wrk and nats-server (bash scripts/setup.sh)")
    start_mariadb()
    sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
    from test_scaleout import Nats
    nats = Nats()
    from cryptography.fernet import Fernet
    common = {"BUS_URL": nats.url, "BUS_PARTITIONS": str(PARTITIONS),
              "BUS_LEASE_SECONDS": str(LEASE), "JWT_SECRET": "j" * 48,
              "ENCRYPTION_KEY": Fernet.generate_key().decode(), "THREADS": "1"}
    holder = {}
    try:
        local = {k: v for k, v in common.items() if not k.startswith("BUS_")}
        zero = throughput(1, local, holder)  # the in-process bus: the cost of the bus
        one = throughput(1, common, holder)
        two = throughput(2, common, holder)
        kills = failover(common, holder)
    finally:
        if "owner" in holder:
            holder["owner"].cleanup()
        nats.stop()
        subprocess.run(["bash", os.path.join(ROOT, "tests/support/mariadb.sh"), "stop", MDB_DIR])
    print()
    print(f"| run | acknowledged events/s | events ({SECONDS} s) | stored |")
    print("|---|---|---|---|")
    print(f"| one server without BUS_URL (in-process bus), core 0, wrk on core 1 | {zero[0]:,.0f} | "
          f"{zero[1]:,} | {zero[2]:,} |")
    print(f"| one server with BUS_URL (core 0), wrk on core 1 | {one[0]:,.0f} | {one[1]:,} | {one[2]:,} |")
    print(f"| two servers (cores 0 and 1), two wrk unpinned | {two[0]:,.0f} = {two[0] / one[0]:.2f}x | "
          f"{two[1]:,} | {two[2]:,} |")
    print()
    print(f"| kill | partitions of the killed instance | moved to the survivors after (lease {LEASE} s) |")
    print("|---|---|---|")
    for i, (n, t) in enumerate(kills):
        print(f"| {i + 1} | {n} | {t:.2f} s |")


if __name__ == "__main__":
    main()
