"""S3 on PostgreSQL, split by process: runs bench/run.py's refresh-on-PostgreSQL scenario
(8 s after 1 s of warm-up) and reads the CPU time the PostgreSQL server's processes and
Portcullis used meanwhile (/proc/PID/stat, user + system). Needs the release build and
PORTCULLIS_BENCH_DATABASE_URL (or PORTCULLIS_TEST_DATABASE_URL); run from the checkout:

    python3 bench/pg_refresh_cpu.py
"""
import argparse
import importlib.util
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("run", os.path.join(HERE, "run.py"))
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)


def cpu_seconds(match):
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if not match(open(f"/proc/{pid}/comm").read().strip()):
                continue
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass  # the process ended meanwhile
    return total / os.sysconf("SC_CLK_TCK")


PROCESSES = {"postgres": lambda c: c.startswith("postgres"), "portcullis": lambda c: c == "portcullis"}
seen = {}
measure = run.loadgen


def timed_loadgen(*argv):
    before = {k: cpu_seconds(m) for k, m in PROCESSES.items()}
    t0 = time.monotonic()
    r = measure(*argv)
    seen["wall_s"] = time.monotonic() - t0
    for k, m in PROCESSES.items():
        seen[f"{k}_cpu_s"] = cpu_seconds(m) - before[k]
    return r


run.loadgen = timed_loadgen
r = run.refresh_on_postgres(argparse.Namespace(duration=8, warmup=1, connections=32), "bench-password-1")
if r is None:
    raise SystemExit("no PostgreSQL server given (PORTCULLIS_BENCH_DATABASE_URL)")
served = r["rps"] * seen["wall_s"]  # warm-up included, as the CPU times are
print(f"refresh on PostgreSQL: {r['rps']:.0f}/s (p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms) over {seen['wall_s']:.1f} s")
for k in PROCESSES:
    cpu = seen[f"{k}_cpu_s"]
    print(f"  {k}: {cpu:.2f} s of CPU, {cpu / seen['wall_s']:.2f} cores, {cpu / served * 1e6:.0f} us per refresh")
