#!/usr/bin/env python3
"""Half-load latency, oha's pacing against an even one.

The main table reads each scenario's p99 "at half load" from `oha -q RATE`, which
schedules request i at start + i/RATE on tokio's timer (one-millisecond resolution):
each tick releases RATE/1000 requests at once. This script measures, for B1, opaque
introspection and client_credentials ES256, the full rate with oha, then alternates
oha -q at half that rate with `portcullis-bench-paced` at the same rate (each request
released at its own instant by an OS thread; latency from the scheduled instant and
from the write), three times each, and prints one line per pair.

Usage (after `bench/run`, which builds the binaries it needs):
    python3 bench/pacing.py [--rounds 3]
"""
import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench_run", os.path.join(HERE, "run.py"))
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)
PACED = os.path.join(run.ROOT, "target", "release", "portcullis-bench-paced")


def paced(url, rate, method=None, body=None, basic=None):
    cmd = [PACED, "--url", url, "--rate", str(rate), "-d", "3", "-w", "1", "-c", "32"]
    if method:
        cmd += ["-m", method]
    if body is not None:
        cmd += ["--body", body, "-H", "content-type: application/x-www-form-urlencoded"]
    if basic:
        cmd += ["--basic", basic]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    if out["errors"] or set(out["status_codes"]) != {"200"}:
        raise SystemExit(f"{url}: {out['status_codes']} {out['errors']}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    for b in (run.BIN, run.BASE_BIN, PACED):
        if not os.path.exists(b):
            raise SystemExit(f"{b} is missing: run bench/run once (it builds the release binaries)")
    work = tempfile.mkdtemp(prefix="portcullis-bench-pacing-")
    pc = run.Portcullis(work, run.free_port())
    pc.start()
    op = pc.cli("client", "create", "--name", "op", "--grant-type", "client_credentials", "--scope", "read",
                "--token-format", "opaque", "--access-token-ttl", "1d")
    es = pc.cli("client", "create", "--name", "es", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256")
    time.sleep(1.5)
    basic = lambda c: f"{c['client_id']}:{c['client_secret']}"
    token = run.client_token(pc.port, op)
    bp = run.free_port()
    base = subprocess.Popen([run.BASE_BIN, f"127.0.0.1:{bp}"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    u, b = f"http://127.0.0.1:{pc.port}", f"http://127.0.0.1:{bp}"
    cases = [("B1 trivial axum JSON", dict(url=f"{b}/trivial")),
             ("introspect opaque", dict(url=f"{u}/oauth/introspect", method="POST", body=f"token={token}",
                                        basic=basic(op))),
             ("client_credentials ES256", dict(url=f"{u}/oauth/token", method="POST",
                                               body="grant_type=client_credentials", basic=basic(es)))]
    print(f"{run.cpu_model()}; 32 connections; oha -q 3 s against paced 3 s (1 s warm-up), alternated")
    print("| scenario | full req/s | half rate | oha -q p50 / p99 ms | paced p50 / p99 ms (from write) "
          "| paced p99 ms (from schedule) | pacer late p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    try:
        for name, kw in cases:
            kw = dict(kw)
            url = kw.pop("url")
            run.oha(url, 2, 32, **kw)
            full = run.oha(url, 5, 32, **kw)
            rate = max(1, int(full["rps"] / 2))
            for _ in range(args.rounds):
                q = run.oha(url, 3, 32, rate=rate, **kw)
                p = paced(url, rate, **kw)
                print(f"| {name} | {full['rps']:.0f} | {rate} | {q['p50_ms']:.2f} / {q['p99_ms']:.2f} | "
                      f"{p['from_send']['p50_ms']:.2f} / {p['from_send']['p99_ms']:.2f} | "
                      f"{p['from_schedule']['p99_ms']:.2f} | {p['pacer_late']['p99_ms']:.2f} |", flush=True)
    finally:
        pc.stop()
        base.terminate()
        base.wait()


if __name__ == "__main__":
    main()
