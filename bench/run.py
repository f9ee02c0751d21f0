#!/usr/bin/env python3
"""Load benchmarks for Portcullis, each figure next to a baseline measured in the same run.

Called by bench/run (which builds the release binaries and installs oha). Starts the
real server on loopback with a fresh SQLite database, plus the baseline server
(bench/baseline), and drives both with oha: fixed connections, fixed duration, a
warm-up run discarded before each measured run, then a run at half the measured
maximum rate for the latency target. Also: start-to-ready on an existing database,
idle and peak RSS, and (unless --skip-criterion) the criterion JOSE benchmark.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "portcullis")
BASE_BIN = os.path.join(ROOT, "target", "release", "portcullis-bench-baseline")
SCALE_BIN = os.path.join(ROOT, "target", "release", "portcullis-bench-keyscale")
RESULTS = os.path.join(ROOT, "bench", "results")
# Issue 6's targets for the scenarios measured against a baseline, by main-table name:
# (section, ratio to the baseline, p99 at half load in ms or None). The main table, the
# interleaved rounds and "Targets at a glance" all read them from here. (S4 covers
# forward-auth and keys/verify too: issue 8's ≥ 40% and issue 3's p99 < 2 ms are looser.)
TARGETS = {
    "client_credentials ES256": ("S1", 0.60, 2.0), "client_credentials EdDSA": ("S1", 0.60, 2.0),
    "introspect JWT (ES256)": ("S4", 0.50, 1.0), "introspect opaque": ("S4", 0.50, 1.0),
    "keys/verify (cached key)": ("S4", 0.50, 1.0),
    "forward-auth JWT (cached)": ("S4", 0.50, 1.0), "forward-auth API key (cached)": ("S4", 0.50, 1.0),
    "JWKS": ("S5", 0.90, None), "discovery": ("S5", 0.90, None),
}
# B1 with the JWKS answer: the same key set size and response headers, served bare.
JWKS_BARE = "B1 JWKS-shaped (same answer, bare)"
# Where the Markdown goes; `--out DIR` moves it and RESULTS into DIR (CI's smoke run
# uses that so it does not rewrite the committed figures).
BENCH_MD = os.path.join(ROOT, "BENCHMARKS.md")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakRss(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.join()
        return self.peak


def wait_ready(port, timeout=30.0, tls=False):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if tls:
                import ssl
                c = http.client.HTTPSConnection("127.0.0.1", port, timeout=1,
                                                context=ssl._create_unverified_context())
            else:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.001)
    raise SystemExit(f"server on {port} not ready after {timeout}s")


class Portcullis:
    def __init__(self, workdir, port, cpus=None):
        self.port = port
        # Optional CPU pinning (taskset -c), so a load generator on the other core
        # does not take the server's CPU.
        self.prefix = ["taskset", "-c", cpus] if cpus else []
        self.preexec = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        self.env.update({
            "PORTCULLIS_SERVER_LISTEN": f"127.0.0.1:{port}",
            "PORTCULLIS_SERVER_ISSUER": f"http://127.0.0.1:{port}",
            "PORTCULLIS_DATABASE_URL": f"sqlite://{workdir}/bench.db?mode=rwc",
            "PORTCULLIS_KEYS_MASTER_KEY_FILE": f"{workdir}/master.key",
            # Rate limiting stays on (every request pays for its GCRA checks) with
            # budgets no load run reaches: one client on one address is the worst case.
            "PORTCULLIS_RATELIMIT_TOKEN_PER_IP": "1000000000/second",
            "PORTCULLIS_RATELIMIT_TOKEN_PER_CLIENT": "1000000000/second",
            "PORTCULLIS_RATELIMIT_FORWARD_AUTH_PER_IP": "1000000000/second",
            "PORTCULLIS_RATELIMIT_FORWARD_AUTH_PER_CREDENTIAL": "1000000000/second",
        })
        self.workdir = workdir
        self.proc = None
        self.tls = False

    def use_tls(self):
        """Serves HTTPS with a fresh self-signed ECDSA P-256 certificate (openssl)."""
        cert, key = os.path.join(self.workdir, "tls.crt"), os.path.join(self.workdir, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        self.env.update({"PORTCULLIS_SERVER_TLS_CERT_FILE": cert, "PORTCULLIS_SERVER_TLS_KEY_FILE": key,
                         "PORTCULLIS_SERVER_ISSUER": f"https://127.0.0.1:{self.port}"})
        self.tls = True

    def cli(self, *args):
        out = subprocess.run([BIN, *args], env=self.env, cwd=self.workdir, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def start(self):
        t0 = time.monotonic()
        self.proc = subprocess.Popen([*self.prefix, BIN, "serve"], env=self.env, preexec_fn=self.preexec, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.workdir, "server.log"), "a"))
        wait_ready(self.port, tls=self.tls)
        return time.monotonic() - t0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def seconds(d):
    """oha's duration: "10s", or "500ms" for a fraction of a second."""
    return f"{d}s" if float(d).is_integer() else f"{round(d * 1000)}ms"


def oha(url, duration, conns, method="GET", body=None, basic=None, rate=None, bearer=None,
        content_type="application/x-www-form-urlencoded", headers=(), ok_class="2", pin=(), wait_ongoing=False,
        new_connections=False):
    cmd = [*pin, "oha", "--no-tui", "--output-format", "json", "-z", seconds(duration), "-c", str(conns), "-m", method,
           "--redirect", "0"]
    if url.startswith("https:"):
        cmd += ["--insecure"]  # the harness's own self-signed certificate
    if new_connections:
        cmd += ["--disable-keepalive"]
    if wait_ongoing:
        # Answers still in flight at the deadline are waited for, not counted as errors.
        cmd += ["--wait-ongoing-requests-after-deadline"]
    for h in headers:
        cmd += ["-H", h]
    if body is not None:
        cmd += ["-d", body, "-T", content_type]
    if bearer is not None:
        cmd += ["-H", f"Authorization: Bearer {bearer}"]
    if basic is not None:
        cmd += ["-a", basic]
    if rate is not None:
        cmd += ["-q", str(rate)]
    print("    $ " + shell_line(cmd + [url]), flush=True)
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    codes = r.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith(ok_class))
    total = sum(codes.values()) or 1
    pct = r.get("latencyPercentiles", {})
    return {
        "rps": r["summary"]["requestsPerSec"],
        "p50_ms": (pct.get("p50") or 0) * 1000,
        "p99_ms": (pct.get("p99") or 0) * 1000,
        "ok_ratio": ok / total,
        "status_codes": codes,
        "errors": r.get("errorDistribution", {}),
        "requests": sum(codes.values()),
    }


def client_token(port, client):
    """An access token for `client` (made with the CLI) by `client_credentials` with
    `client_secret_basic`, from the server on 127.0.0.1:`port`."""
    import base64
    conn = http.client.HTTPConnection("127.0.0.1", port)
    auth = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    conn.request("POST", "/oauth/token", "grant_type=client_credentials",
                 {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"})
    return json.loads(conn.getresponse().read())["access_token"]


def shell_line(cmd):
    """The command as a shell line, with the run's throwaway credentials elided."""
    import shlex
    shown = []
    for prev, a in zip([None, *cmd], cmd):
        if prev == "-a":
            a = "<client_id>:<secret>"
        elif prev == "-H" and a.lower().startswith("authorization:"):
            a = "Authorization: Bearer <token>"
        elif prev == "-H" and a.lower().startswith("x-api-key:"):
            a = "X-Api-Key: <key>"
        elif prev == "-d":
            a = re.sub(r"(token=)[^&]+", r"\1<token>", a)
            a = re.sub(r'("key": ")[^"]+', r"\1<key>", a)
        shown.append(a)
    return shlex.join(shown)


def versions():
    """The tools this run used, as they report themselves."""
    out = {}
    for name, cmd in [("oha", ["oha", "--version"]), ("rustc", ["rustc", "--version"]), ("node", ["node", "--version"])]:
        try:
            out[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            out[name] = "not found"
    return out


def measure(name, url, pid, args, **kw):
    print(f"  {name}: warm-up {args.warmup}s, run {args.duration}s x {args.connections} connections", flush=True)
    oha(url, args.warmup, args.connections, **kw)
    sampler = PeakRss(pid)
    sampler.start()
    full = oha(url, args.duration, args.connections, **kw)
    half_rate = max(1, int(full["rps"] / 2))
    # The half-load run only reads latency at a steady rate: 3 s (1 s with --quick),
    # some 70,000 requests on the light paths, is enough.
    half = oha(url, max(1, args.duration * 3 // 10), args.connections, rate=half_rate, **kw)
    peak = sampler.stop()
    if full["ok_ratio"] < 0.999:
        raise SystemExit(f"{name}: only {full['ok_ratio']:.3%} 2xx: {full['status_codes']}")
    return {"scenario": name, **full, "half_rate": half_rate, "p50_half_ms": half["p50_ms"],
            "p99_half_ms": half["p99_ms"], "peak_rss_mb": peak / 1024}


# Criterion's timing: 1 s warm-up and 2 s of samples per benchmark (its defaults
# are 3 s and 5 s), or much shorter for --quick; keeps the full run under 15 minutes.
CRITERION_FULL = ["--", "--warm-up-time", "1", "--measurement-time", "2"]
CRITERION_QUICK = ["--", "--warm-up-time", "0.1", "--measurement-time", "0.2", "--sample-size", "10"]
# The two criterion benchmarks (main() builds them before the clock starts).
JOSE_BENCH = ["cargo", "bench", "--locked", "-p", "portcullis-core", "--bench", "jose"]
VERIFY_BENCH = ["cargo", "bench", "--locked", "-p", "portcullis-verify", "--bench", "verify"]
# Memory per cached key: a binary of its own, since its counting allocator would slow
# the library path timed by VERIFY_BENCH.
MEMORY_BENCH = ["cargo", "bench", "--locked", "-p", "portcullis-verify", "--bench", "memory"]


def criterion(skip, quick=False):
    if skip:
        return None
    subprocess.run([*JOSE_BENCH, *(CRITERION_QUICK if quick else CRITERION_FULL)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    out = {}
    for alg in ["EdDSA", "ES256", "RS256", "PS256"]:
        row = {}
        for fn in ["raw_sign", "jwt_sign", "raw_verify", "jwt_verify"]:
            with open(os.path.join(ROOT, "target", "criterion", alg, fn, "new", "estimates.json")) as f:
                row[fn] = json.load(f)["mean"]["point_estimate"] / 1000.0  # µs
        out[alg] = row
    return out


def svg(rows, path, title=None):
    width, bar_h, left = 860, 22, 420
    top = 30
    height = top + len(rows) * (bar_h + 8) + 20
    peak = max(r["rps"] for r in rows) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<text x="10" y="18" font-size="14">{title or "Throughput (req/s)"}, same run'
             + (f', loopback, {rows[0]["connections"]} connections' if rows[0].get("connections") else "") + '</text>']
    for i, r in enumerate(rows):
        y = top + i * (bar_h + 8)
        w = (width - left - 90) * r["rps"] / peak
        # Baselines in grey: chart() marks them; the main table's are named B1, B2.
        color = "#888" if r.get("baseline", r["scenario"].startswith("B")) else "#2a6fdb"
        parts.append(f'<text x="10" y="{y + 15}">{r["scenario"]}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{r["rps"]:.0f}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


_LAP = [time.monotonic()]
_START = [time.monotonic()]


def lap(what):
    now = time.monotonic()
    print(f"[{what}: {now - _LAP[0]:.0f} s]", flush=True)
    _LAP[0] = now


def chart(file, title, pairs, connections):
    """Writes bench/results/FILE, a bar chart of (label, req/s, is_baseline) pairs,
    and returns the Markdown line that shows it."""
    rows = [{"scenario": label, "baseline": base, "rps": rps, "connections": connections}
            for label, rps, base in pairs]
    os.makedirs(RESULTS, exist_ok=True)
    svg(rows, os.path.join(RESULTS, file), title=title)
    return f"![{title}](bench/results/{file})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="2 s runs (0.5 s warm-up) instead of 10 s (2 s), short criterion runs: checks that everything runs")
    ap.add_argument("--skip-criterion", action="store_true")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", choices=["load", "signin", "peer", "forward-auth", "light-paths", "verify", "overload", "tls"],
                    help="run one section only: the main load table, sign-in and refresh, the peer, the interleaved rounds (light paths and tokens), the library, overload or TLS")
    ap.add_argument("--out", help="write BENCHMARKS.md and results/ under this directory instead of the checkout")
    args = ap.parse_args()
    # --quick checks that everything still runs (CI) in under three minutes; the full
    # run takes under 15 (both once the binaries are built).
    args.duration, args.warmup = (2, 0.5) if args.quick else (10, 2)
    if not args.skip_criterion and args.only in (None, "load", "verify"):
        # Built before the clock starts (cached after the first time), so the laps
        # below time the measuring only.
        print("building the criterion benchmarks", flush=True)
        for cmd in (JOSE_BENCH, VERIFY_BENCH, MEMORY_BENCH):
            subprocess.run([*cmd, "--no-run"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    _START[0] = _LAP[0] = time.monotonic()
    if args.out:
        global BENCH_MD, RESULTS
        os.makedirs(args.out, exist_ok=True)
        BENCH_MD, RESULTS = os.path.join(args.out, "BENCHMARKS.md"), os.path.join(args.out, "results")
        os.makedirs(RESULTS, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "BENCHMARKS.md"), BENCH_MD)  # noqa: the committed file stays as it is
    if args.only == "verify":
        write_verify_markdown(verify_bench(args.quick))
        return
    if not shutil.which("oha"):
        raise SystemExit("oha not found (bench/run installs it)")
    if args.only == "signin":
        write_signin_markdown(signin_bench(args))
        return
    if args.only == "peer":
        write_peer_markdown(peer_bench(args))
        return
    if args.only in ("forward-auth", "light-paths"):
        write_ab_markdown(ab_bench(args))
        return
    if args.only == "overload":
        overload_bench(args)
        return
    if args.only == "tls":
        write_tls_markdown(tls_bench(args))
        return

    work = tempfile.mkdtemp(prefix="portcullis-bench-")
    port, base_port = free_port(), free_port()
    pc = Portcullis(work, port)

    print("first start (creates database, master key, 4 signing keys)", flush=True)
    first_start = pc.start()
    pc.stop()
    ready = sorted(pc.start() if i == 0 else (pc.stop(), pc.start())[1] for i in range(5))
    start_to_ready_ms = ready[len(ready) // 2] * 1000
    time.sleep(1.0)
    idle_rss_mb = rss_kb(pc.proc.pid) / 1024

    es = pc.cli("client", "create", "--name", "bench-es256", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256")
    ed = pc.cli("client", "create", "--name", "bench-eddsa", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "EdDSA")
    op = pc.cli("client", "create", "--name", "bench-opaque", "--grant-type", "client_credentials", "--scope", "read",
                "--token-format", "opaque", "--access-token-ttl", "1d")

    jwt_token, opaque_token = client_token(port, es), client_token(port, op)
    verifier = pc.cli("admin-token", "create", "--scope", "keys:verify", "--name", "bench")["token"]
    pc.cli("keyspace", "create", "--name", "bench", "--prefix", "bench_live", "--scope", "read")
    api_key = pc.cli("apikey", "create", "--keyspace", "bench", "--owner", "bench", "--scope", "read")["key"]
    time.sleep(1.5)  # let the running server notice the CLI's changes (database.change_poll_interval)
    base = subprocess.Popen([BASE_BIN, f"127.0.0.1:{base_port}"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)

    u = f"http://127.0.0.1:{port}"
    b = f"http://127.0.0.1:{base_port}"
    basic = lambda c: f"{c['client_id']}:{c['client_secret']}"
    rows = []
    print("load runs", flush=True)
    rows.append(measure("B1 trivial axum JSON", f"{b}/trivial", base.pid, args))
    rows.append(measure(JWKS_BARE, f"{b}/jwks-shaped", base.pid, args))
    rows.append(measure("B2 sign-only ES256", f"{b}/sign/ES256", base.pid, args, method="POST", body=""))
    rows.append(measure("B2 sign-only EdDSA", f"{b}/sign/EdDSA", base.pid, args, method="POST", body=""))
    rows.append(measure("client_credentials ES256", f"{u}/oauth/token", pc.proc.pid, args, method="POST",
                        body="grant_type=client_credentials", basic=basic(es)))
    rows.append(measure("client_credentials EdDSA", f"{u}/oauth/token", pc.proc.pid, args, method="POST",
                        body="grant_type=client_credentials", basic=basic(ed)))
    rows.append(measure("introspect JWT (ES256)", f"{u}/oauth/introspect", pc.proc.pid, args, method="POST",
                        body=f"token={jwt_token}", basic=basic(es)))
    rows.append(measure("introspect opaque", f"{u}/oauth/introspect", pc.proc.pid, args, method="POST",
                        body=f"token={opaque_token}", basic=basic(op)))
    rows.append(measure("keys/verify (cached key)", f"{u}/api/v1/keys/verify", pc.proc.pid, args, method="POST",
                        body=json.dumps({"key": api_key, "scopes": ["read"]}), bearer=verifier,
                        content_type="application/json"))
    rows.append(measure("forward-auth JWT (cached)", f"{u}/auth/verify", pc.proc.pid, args, bearer=jwt_token))
    rows.append(measure("forward-auth API key (cached)", f"{u}/auth/verify", pc.proc.pid, args,
                        headers=[f"X-Api-Key: {api_key}"]))
    rows.append(measure("JWKS", f"{u}/jwks.json", pc.proc.pid, args))
    rows.append(measure("discovery", f"{u}/.well-known/openid-configuration", pc.proc.pid, args))
    server_peak_rss_mb = rss_kb(pc.proc.pid, "VmHWM") / 1024
    pc.stop()

    # Price anomaly detection on the verification paths: two fresh servers, the
    # same key setup, detection on and off, measured back to back. (A successful
    # verification writes no audit record: it is counted in usage counters, so the
    # audit trail costs nothing on this path by construction.)
    # Both servers are started and set up before either is measured, and the order
    # alternates between the paths (on-off, then off-on), so neither setting always
    # runs first after the long runs above.
    servers = {}
    for anomaly in ["on", "off"]:
        d = tempfile.mkdtemp(prefix=f"portcullis-bench-anomaly-{anomaly}-")
        srv = Portcullis(d, free_port())
        srv.env["PORTCULLIS_ANOMALY_ENABLED"] = "true" if anomaly == "on" else "false"
        srv.start()
        v = srv.cli("admin-token", "create", "--scope", "keys:verify", "--name", "bench")["token"]
        srv.cli("keyspace", "create", "--name", "bench", "--prefix", "bench_live", "--scope", "read")
        k = srv.cli("apikey", "create", "--keyspace", "bench", "--owner", "bench", "--scope", "read")["key"]
        servers[anomaly] = (srv, v, k)
    time.sleep(1.5)

    def anomaly_run(path, anomaly):
        srv, v, k = servers[anomaly]
        if path == "keys/verify":
            return f"http://127.0.0.1:{srv.port}/api/v1/keys/verify", dict(
                method="POST", body=json.dumps({"key": k, "scopes": ["read"]}), bearer=v, content_type="application/json")
        return f"http://127.0.0.1:{srv.port}/auth/verify", dict(headers=[f"X-Api-Key: {k}"])

    anomaly_pairs = {"keys/verify": [], "forward-auth API key": []}
    for path, order in [("keys/verify", ["on", "off"]), ("forward-auth API key", ["off", "on"])]:
        pair = {}
        for anomaly in order:
            url, kw = anomaly_run(path, anomaly)
            row = measure(f"{path}, anomaly detection {anomaly}", url, servers[anomaly][0].proc.pid, args, **kw)
            rows.append(row)
            pair[anomaly] = row["rps"]
        anomaly_pairs[path].append(pair)
    # One pair of runs can swing by a fifth on a busy virtual machine (seen: 23% "cost"
    # for a change of 2.7% in instructions), so the full run adds two short pairs per
    # path, alternating which setting goes first, and reports the median paired cost.
    short = argparse.Namespace(**{**vars(args), "duration": max(1, args.duration * 3 // 10),
                                  "warmup": min(1, args.warmup)})
    for i in range(0 if args.quick else 2):
        for path in anomaly_pairs:
            pair = {}
            for anomaly in (["off", "on"] if (i + (path == "keys/verify")) % 2 else ["on", "off"]):
                url, kw = anomaly_run(path, anomaly)
                pair[anomaly] = measure_once(f"{path}, anomaly detection {anomaly} (pair {i + 2})", url, short, **kw)["rps"]
            anomaly_pairs[path].append(pair)
    for srv, _, _ in servers.values():
        srv.stop()
    base.terminate()
    base.wait()

    by = {r["scenario"]: r for r in rows}
    baseline_of = {
        "B1 trivial axum JSON": None, JWKS_BARE: "B1 trivial axum JSON", "B2 sign-only ES256": "B1 trivial axum JSON",
        "B2 sign-only EdDSA": "B1 trivial axum JSON",
        "client_credentials ES256": "B2 sign-only ES256", "client_credentials EdDSA": "B2 sign-only EdDSA",
        "introspect JWT (ES256)": "B1 trivial axum JSON", "introspect opaque": "B1 trivial axum JSON",
        "JWKS": "B1 trivial axum JSON", "discovery": "B1 trivial axum JSON",
        "keys/verify (cached key)": "B1 trivial axum JSON",
        "forward-auth JWT (cached)": "B1 trivial axum JSON", "forward-auth API key (cached)": "B1 trivial axum JSON",
        "keys/verify, anomaly detection on": "B1 trivial axum JSON",
        "keys/verify, anomaly detection off": "B1 trivial axum JSON",
        "forward-auth API key, anomaly detection on": "B1 trivial axum JSON",
        "forward-auth API key, anomaly detection off": "B1 trivial axum JSON",
    }
    for r in rows:
        r["connections"] = args.connections
        base_name = baseline_of[r["scenario"]]
        r["baseline"] = base_name
        r["ratio"] = r["rps"] / by[base_name]["rps"] if base_name else None
        r["target_ratio"] = TARGETS[r["scenario"]][1] if r["scenario"] in TARGETS else None

    overhead = {}
    for path, pairs in anomaly_pairs.items():
        costs = [1 - p["on"] / p["off"] for p in pairs]
        overhead[path] = {"median": sorted(costs)[len(costs) // 2], "pairs": costs}
    lap("main load runs")
    crit = criterion(args.skip_criterion, args.quick)
    if not args.skip_criterion:
        write_verify_markdown(verify_bench(args.quick))
    lap("criterion")
    print("API-key scale (cold lookups with few vs many keys stored; RSS with keys cached)", flush=True)
    sizes, cached = ("1000,20000", "20000") if args.quick else ("1000,1000000", "100000")
    scale = json.loads(subprocess.run([SCALE_BIN, "--keys", sizes, "--sample", "5000", "--cached", cached],
                                      capture_output=True, text=True, check=True).stdout)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform_mem()}", "cpu": cpu_model(), "versions": versions(),
        "quick": args.quick, "duration_s": args.duration, "warmup_s": args.warmup, "connections": args.connections,
        "first_start_s": first_start, "start_to_ready_ms": start_to_ready_ms, "idle_rss_mb": idle_rss_mb,
        "server_peak_rss_mb": server_peak_rss_mb, "load": rows, "anomaly_overhead": overhead, "criterion_us": crit, "key_scale": scale,
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump(result, f, indent=2)
    svg(rows, os.path.join(RESULTS, "loadtest.svg"))
    write_markdown(result)
    lap("key scale")
    if args.only == "load":
        return
    write_signin_markdown(signin_bench(args))
    lap("sign-in and refresh")
    write_peer_markdown(peer_bench(args))
    lap("peer")
    write_ab_markdown(ab_bench(args, pairs=1 if args.quick else 3))
    lap("interleaved rounds")
    write_tls_markdown(tls_bench(args))
    lap("TLS")
    print(f"[all sections measured in {time.monotonic() - _START[0]:.0f} s]", flush=True)
    print(open(BENCH_MD).read().split("<!-- results:start -->")[1].split("<!-- results:end -->")[0])


REFRESH_BIN = os.path.join(ROOT, "target", "release", "portcullis-bench-refresh")


def loadgen(*argv):
    out = subprocess.run([REFRESH_BIN, *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def login_client(pc, password):
    """The sign-in and refresh scenarios' fixtures, made with the CLI on `pc`'s database:
    a role, the user `bench` with `password`, and a confidential client for the
    password and refresh grants (ES256). Returns the client (id and secret)."""
    pc.cli("role", "put", "--name", "reader", "--scope", "read")
    subprocess.run([BIN, "user", "create", "--username", "bench", "--role", "reader", "--password-stdin"],
                   env=pc.env, cwd=pc.workdir, input=password + "\n", capture_output=True, text=True, check=True)
    return pc.cli("client", "create", "--name", "bench-login", "--grant-type", "password", "--grant-type",
                  "refresh_token", "--scope", "read", "--scope", "offline_access", "--access-token-alg", "ES256")


def signin_bench(args):
    """Password sign-in against raw Argon2id (B3 over HTTP), and the refresh grant
    against the sign-only baseline (B2), each pair in the same run."""
    print("sign-in: fresh server, default (OWASP) Argon2id, login rate limits off", flush=True)
    work = tempfile.mkdtemp(prefix="portcullis-bench-signin-")
    pc = Portcullis(work, free_port())
    for k in ["LOGIN_PER_IP", "LOGIN_PER_ACCOUNT"]:
        pc.env[f"PORTCULLIS_RATELIMIT_{k}"] = "off"
    pc.start()
    password = "bench-password-1"
    c = login_client(pc, password)
    cc = pc.cli("client", "create", "--name", "bench-cc", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256")
    time.sleep(1.5)
    base_port = free_port()
    base = subprocess.Popen([BASE_BIN, f"127.0.0.1:{base_port}"], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    u, b = f"http://127.0.0.1:{pc.port}", f"http://127.0.0.1:{base_port}"
    # A browser's cookie and the login form's CSRF token, once; oha then replays the form.
    conn = http.client.HTTPConnection("127.0.0.1", pc.port)
    conn.request("GET", "/login")
    res = conn.getresponse()
    cookie = res.getheader("set-cookie").split(";")[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', res.read().decode()).group(1)
    form = f"csrf={csrf}&username=bench&password={password}&continue=%2Faccount"
    basic = f"{c['client_id']}:{c['client_secret']}"
    conns = args.connections
    rows = []

    def run(name, url, **kw):
        print(f"  {name}: warm-up {args.warmup}s, run {args.duration}s x {conns} connections", flush=True)
        oha(url, args.warmup, conns, **kw)
        r = oha(url, args.duration, conns, **kw)
        if r["ok_ratio"] < 0.999:
            raise SystemExit(f"{name}: only {r['ok_ratio']:.3%} expected answers: {r['status_codes']}")
        rows.append({"scenario": name, **r})
        return r

    b3 = run("B3 Argon2id verify (OWASP m=19456 t=2 p=1), axum + spawn_blocking", f"{b}/argon2", method="POST", body="")
    login = run("password sign-in, POST /login (303 + new session)", f"{u}/login", method="POST", body=form,
                headers=[f"Cookie: {cookie}"], ok_class="3")
    grant = run("password grant, POST /oauth/token", f"{u}/oauth/token", method="POST",
                body=f"grant_type=password&username=bench&password={password}&scope=read", basic=basic)
    # The same pair in short interleaved rounds: the machine's speed drifts between
    # runs (B3 alone moved by 18% between two runs ten minutes apart on one machine),
    # and a single pair measures that drift as much as the sign-in's own cost.
    short = argparse.Namespace(**{**vars(args), "duration": max(1, args.duration * 3 // 10),
                                  "warmup": min(1, args.warmup)})
    rounds = []
    for i in range(3):
        rounds.append({
            "b3": measure_once(f"B3 (round {i + 1})", f"{b}/argon2", short, method="POST", body=""),
            "login": measure_once(f"password sign-in (round {i + 1})", f"{u}/login", short, method="POST",
                                  body=form, headers=[f"Cookie: {cookie}"], ok_class="3"),
        })
    login_rss = rss_kb(pc.proc.pid, "VmHWM") / 1024
    base_rss = rss_kb(base.pid, "VmHWM") / 1024
    print("  refresh grant and its baselines (portcullis-bench-refresh, same generator for all three)", flush=True)
    d, w = str(args.duration), str(args.warmup)
    b2 = loadgen("--static", "--url", f"{b}/sign/ES256", "-c", str(conns), "-d", d, "-w", w)
    ccr = loadgen("--static", "--url", f"{u}/oauth/token", "--basic", f"{cc['client_id']}:{cc['client_secret']}",
                  "--body", "grant_type=client_credentials", "-c", str(conns), "-d", d, "-w", w)
    ref = loadgen("--url", f"{u}/oauth/token", "--basic", basic, "--user", "bench", "--password", password,
                  "-c", str(conns), "-d", d, "-w", w)
    rss = rss_kb(pc.proc.pid, "VmHWM") / 1024
    pc.stop()
    ref_pg = refresh_on_postgres(args, password)
    base.terminate()
    base.wait()
    cores = os.cpu_count() or 1
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cores} cores, {platform_mem()}", "connections": conns, "duration_s": args.duration,
        "warmup_s": args.warmup, "cores": cores, "b3": b3, "login": login, "password_grant": grant,
        "b2_sign_es256": b2, "client_credentials": ccr, "refresh": ref, "refresh_postgres": ref_pg, "peak_rss_mb": rss,
        "login_peak_rss_mb": login_rss, "baseline_peak_rss_mb": base_rss,
        "rounds": rounds, "round_duration_s": short.duration, "round_warmup_s": short.warmup,
    }


def refresh_pg_row(r, b2):
    pg = r.get("refresh_postgres")
    if not pg:
        return ("| refresh_token with rotation (PostgreSQL) | not measured: no PostgreSQL server given "
                "(PORTCULLIS_BENCH_DATABASE_URL) | | | | | — |")
    per_core = pg["rps"] / r["cores"]
    return (f"| refresh_token with rotation (PostgreSQL, durable) | {pg['rps']:.0f} | {per_core:.0f} | "
            f"{pg['p50_ms']:.2f} | {pg['p99_ms']:.2f} | {pg['rps'] / b2['rps']:.0%} | report (SQLite's line: "
            f"≥ 1,200/s per core: {verdict(per_core >= 1200)}) |")


def bench_database_url():
    """The PostgreSQL server for S3 on PostgreSQL: PORTCULLIS_BENCH_DATABASE_URL, else the
    test suite's PORTCULLIS_TEST_DATABASE_URL (which .ci/run sets); None without either."""
    return os.environ.get("PORTCULLIS_BENCH_DATABASE_URL") or os.environ.get("PORTCULLIS_TEST_DATABASE_URL")


def psql(url, sql):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True, text=True)


def refresh_on_postgres(args, password):
    """The refresh run again on a Portcullis whose database is PostgreSQL (a fresh schema,
    dropped afterwards): same generator, same client and user set-up. None (and a line
    saying why) when no server is configured."""
    url = bench_database_url()
    if not url:
        print("  refresh on PostgreSQL: skipped (set PORTCULLIS_BENCH_DATABASE_URL)", flush=True)
        return None
    if not shutil.which("psql"):
        raise SystemExit("refresh on PostgreSQL needs psql (Debian: postgresql-client) to make its schema")
    settings = {k: v for k, v in
                (line.split("|", 1) for line in subprocess.run(
                    ["psql", url, "-qAtc", "SELECT name || '|' || setting FROM pg_settings WHERE name IN "
                     "('fsync', 'synchronous_commit', 'server_version', 'shared_buffers', 'wal_sync_method')"],
                    check=True, capture_output=True, text=True).stdout.splitlines())}
    schema = f"pc_bench_{os.getpid()}"
    psql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    work = tempfile.mkdtemp(prefix="portcullis-bench-pg-")
    pc = Portcullis(work, free_port())
    sep = "&" if "?" in url else "?"
    pc.env["PORTCULLIS_DATABASE_URL"] = f"{url}{sep}options[search_path]={schema}"
    for k in ["LOGIN_PER_IP", "LOGIN_PER_ACCOUNT"]:  # as the SQLite run: 32 sign-ins at once
        pc.env[f"PORTCULLIS_RATELIMIT_{k}"] = "off"
    try:
        pc.start()
        c = login_client(pc, password)
        time.sleep(1.5)
        print(f"  refresh on PostgreSQL {settings.get('server_version')} (fsync {settings.get('fsync')}, "
              f"synchronous_commit {settings.get('synchronous_commit')})", flush=True)
        d, w = str(args.duration), str(args.warmup)
        r = loadgen("--url", f"http://127.0.0.1:{pc.port}/oauth/token", "--basic",
                    f"{c['client_id']}:{c['client_secret']}", "--user", "bench", "--password", password,
                    "-c", str(args.connections), "-d", d, "-w", w)
        r["peak_rss_mb"] = rss_kb(pc.proc.pid, "VmHWM") / 1024
        r["postgres"] = settings
        pc.stop()
    finally:
        if pc.proc and pc.proc.poll() is None:
            pc.proc.kill()
        psql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return r


def write_signin_markdown(r):
    cores = r["cores"]
    lr, gr = r["login"]["rps"] / r["b3"]["rps"], r["password_grant"]["rps"] / r["b3"]["rps"]
    rows = [
        ("B3 Argon2id verify, OWASP parameters (axum + spawn_blocking)", r["b3"], "baseline", "—"),
        ("password sign-in `POST /login` (Argon2id + new session + audit record, 303)", r["login"],
         f"{lr:.0%} of B3", f"≥ 90%: {verdict(lr >= 0.9)}"),
        ("password grant `POST /oauth/token` (Argon2id + ES256 token)", r["password_grant"], f"{gr:.0%} of B3", "—"),
    ]
    lines = [f"Run {r['date']} on {r['machine']}; {r['connections']} connections, {r['warmup_s']} s warm-up then "
             f"{r['duration_s']} s per run; server and load generator share the cores.", "",
             "| scenario (oha) | req/s | per core | p50 ms | p99 ms | ratio | target |", "|---|---:|---:|---:|---:|---:|---|"]
    for name, x, ratio, tgt in rows:
        lines.append(f"| {name} | {x['rps']:.1f} | {x['rps'] / cores:.1f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {ratio} | {tgt} |")
    ratios = [x["login"]["rps"] / x["b3"]["rps"] for x in r["rounds"]]
    med = sorted(ratios)[len(ratios) // 2]
    lines += ["", f"The same pair in {len(ratios)} interleaved rounds ({r['round_warmup_s']} s warm-up then "
              f"{r['round_duration_s']} s per run; each round B3, then the sign-in), each ratio to the same round's B3:",
              "", "| round | B3 req/s | sign-in req/s | ratio |", "|---:|---:|---:|---:|"]
    for i, (x, q) in enumerate(zip(r["rounds"], ratios), 1):
        lines.append(f"| {i} | {x['b3']['rps']:.1f} | {x['login']['rps']:.1f} | {q:.0%} |")
    lines += [f"| median | | | {med:.1%} (target ≥ 90%: {verdict(med >= 0.9)}) |"]
    b2, cc, ref = r["b2_sign_es256"], r["client_credentials"], r["refresh"]
    rr = ref["rps"] / b2["rps"]
    per_core = ref["rps"] / cores
    lines += ["", "| scenario (portcullis-bench-refresh, closed loop) | req/s | per core | p50 ms | p99 ms | ratio to B2 | target |",
              "|---|---:|---:|---:|---:|---:|---|",
              f"| B2 sign-only ES256 | {b2['rps']:.0f} | {b2['rps'] / cores:.0f} | {b2['p50_ms']:.2f} | {b2['p99_ms']:.2f} | baseline | — |",
              f"| client_credentials ES256 | {cc['rps']:.0f} | {cc['rps'] / cores:.0f} | {cc['p50_ms']:.2f} | {cc['p99_ms']:.2f} | {cc['rps'] / b2['rps']:.0%} | — |",
              f"| refresh_token with rotation (SQLite, durable) | {ref['rps']:.0f} | {per_core:.0f} | {ref['p50_ms']:.2f} | {ref['p99_ms']:.2f} | {rr:.0%} | ≥ 1,200/s per core: {verdict(per_core >= 1200)} |",
              refresh_pg_row(r, b2),
              "", f"Peak RSS (VmHWM): the server {r['login_peak_rss_mb']:.0f} MB after the sign-in runs and "
              f"{r['peak_rss_mb']:.0f} MB after the refresh runs; the baseline server {r['baseline_peak_rss_mb']:.0f} MB.",
              "", chart("signin.svg", "Password sign-in against Argon2id (req/s)",
                        [("B3 Argon2id verify", r["b3"]["rps"], True), ("POST /login", r["login"]["rps"], False),
                         ("password grant", r["password_grant"]["rps"], False)], r["connections"]),
              "", chart("refresh.svg", "Refresh rotation against signing (req/s)",
                        [("B2 sign-only ES256", b2["rps"], True), ("client_credentials ES256", cc["rps"], False),
                         ("refresh_token rotation (SQLite)", ref["rps"], False)]
                        + ([("refresh_token rotation (PostgreSQL)", r["refresh_postgres"]["rps"], False)]
                           if r.get("refresh_postgres") else []), r["connections"])]
    if r.get("refresh_postgres"):
        pg = r["refresh_postgres"]["postgres"]
        lines += ["", f"PostgreSQL {pg.get('server_version')} on the same machine (loopback; fsync "
                  f"{pg.get('fsync')}, synchronous_commit {pg.get('synchronous_commit')}, wal_sync_method "
                  f"{pg.get('wal_sync_method')}, shared_buffers {pg.get('shared_buffers')} pages of 8 kB): a fresh "
                  "schema, the same user, client and generator as the SQLite run; its server shares the two "
                  "cores with Portcullis and the generator, so the per-core figure divides by the machine's cores."]
    path = BENCH_MD
    text = open(path).read()
    block = "\n".join(lines)
    if "<!-- signin:start -->" not in text:
        text += "\n## Sign-in and refresh\n\n<!-- signin:start -->\n<!-- signin:end -->\n"
    head, rest = text.split("<!-- signin:start -->")
    _, tail = rest.split("<!-- signin:end -->")
    with open(path, "w") as f:
        f.write(f"{head}<!-- signin:start -->\n{block}\n<!-- signin:end -->{tail}")
    with open(os.path.join(RESULTS, "signin.json"), "w") as f:
        json.dump(r, f, indent=2)
    print(block)


PEER_DIR = os.path.join(ROOT, "bench", "peer")


def measure_once(name, url, args, **kw):
    """Warm-up, then one full-rate run; refuses a run with unexpected answers."""
    print(f"  {name}: warm-up {args.warmup}s, run {args.duration}s x {args.connections} connections", flush=True)
    oha(url, args.warmup, args.connections, **kw)
    r = oha(url, args.duration, args.connections, **kw)
    if r["ok_ratio"] < 0.999:
        raise SystemExit(f"{name}: only {r['ok_ratio']:.3%} expected answers: {r['status_codes']}")
    return {"scenario": name, **r}


def verify_bench(quick=False):
    """S8: portcullis-verify's offline check against the raw aws-lc-rs verification of
    the same token, DPoP proof validation, and heap bytes per cached key (criterion)."""
    cmd = [*VERIFY_BENCH, *(CRITERION_QUICK if quick else CRITERION_FULL)]
    print("criterion: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    print("memory per cached key: " + " ".join(MEMORY_BENCH), flush=True)
    out = subprocess.run(MEMORY_BENCH, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    mem, rss = {}, {}
    for line in out.splitlines():
        m = re.match(r"memory per cached key \((\w+)\): (\d+) bytes.*?, (-?\d+) bytes of resident memory", line)
        if m:
            mem[m.group(1)], rss[m.group(1)] = int(m.group(2)), int(m.group(3))
    def est(group, fn):
        with open(os.path.join(ROOT, "target", "criterion", group, fn, "new", "estimates.json")) as f:
            return json.load(f)["mean"]["point_estimate"] / 1000.0  # µs
    rows = {}
    for alg in ["EdDSA", "ES256", "RS256", "PS256"]:
        rows[alg] = {
            "raw_verify": est(f"verify_{alg}", "raw_verify"),
            "library_verify": est(f"verify_{alg}", "library_verify"),
            "make_proof": est(f"dpop_{alg}", "make_proof"),
            "validate_proof": est(f"dpop_{alg}", "validate_proof"),
            "bytes_per_key": mem.get(alg),
            "rss_per_key": rss.get(alg),
        }
    r = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(cmd), "memory_command": " ".join(MEMORY_BENCH),
         "rows": rows}
    with open(os.path.join(RESULTS, "verify.json"), "w") as f:
        json.dump(r, f, indent=2)
    return r


def write_verify_markdown(r):
    lines = [f"Run of {r['date']}: `{r['command']}` (one thread; mean µs per operation); memory per cached key: "
             f"`{r['memory_command']}`.", "",
             "| alg | raw aws-lc-rs verify (key parsed once) | library `verify_at` | ratio (target ≥ 90%) | make DPoP proof | validate DPoP proof (+ replay cache) | memory per cached key: Rust heap / resident |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for alg, x in r["rows"].items():
        ratio = x["raw_verify"] / x["library_verify"]
        mem = (f"{x['bytes_per_key']} B / {x['rss_per_key']} B" if x.get("rss_per_key") is not None
               else "—")
        lines.append(f"| {alg} | {x['raw_verify']:.1f} | {x['library_verify']:.1f} | {ratio:.1%}: {verdict(ratio >= 0.9)} | "
                     f"{x['make_proof']:.1f} | {x['validate_proof']:.1f} | {mem} |")
    pairs = []
    for alg, x in r["rows"].items():
        pairs += [(f"{alg} raw aws-lc-rs verify", 1e6 / x["raw_verify"], True),
                  (f"{alg} portcullis-verify", 1e6 / x["library_verify"], False)]
    lines += ["", chart("verify.svg", "Offline verification, one thread (operations/s)", pairs, None)]
    replace_block("verify", "\n".join(lines), "## Resource-server library (portcullis-verify, S8)")


def replace_block(marker, block, heading):
    path = BENCH_MD
    text = open(path).read()
    if f"<!-- {marker}:start -->" not in text:
        text += f"\n{heading}\n\n<!-- {marker}:start -->\n<!-- {marker}:end -->\n"
    head, rest = text.split(f"<!-- {marker}:start -->")
    _, tail = rest.split(f"<!-- {marker}:end -->")
    with open(path, "w") as f:
        f.write(f"{head}<!-- {marker}:start -->\n{block}\n<!-- {marker}:end -->{tail}")


def peer_bench(args):
    """Portcullis and node oidc-provider, the same client, scope, algorithm and oha
    settings, back to back: client_credentials (ES256 JWT) and opaque introspection."""
    if not os.path.isdir(os.path.join(PEER_DIR, "node_modules")):
        raise SystemExit("bench/peer/node_modules missing (bench/run installs it with npm)")
    print("peer: Portcullis and node oidc-provider side by side", flush=True)
    work = tempfile.mkdtemp(prefix="portcullis-bench-peer-")
    pc = Portcullis(work, free_port())
    pc.start()
    es = pc.cli("client", "create", "--name", "peer-es256", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256", "--audience", "https://api.test", "--default-audience", "https://api.test")
    op = pc.cli("client", "create", "--name", "peer-opaque", "--grant-type", "client_credentials", "--scope", "read",
                "--token-format", "opaque", "--access-token-ttl", "1d")
    time.sleep(1.5)
    secret = "peer-secret-" + os.urandom(16).hex()
    peer_port = free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    peer = subprocess.Popen(["node", "server.js", str(peer_port), "bench", secret], cwd=PEER_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "peer.log"), "w"))
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", peer_port, timeout=1).request("GET", "/.well-known/openid-configuration")
            break
        except OSError:
            time.sleep(0.1)
    import base64

    def form_post(port, path, body, user, pw):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
        conn.request("POST", path, body, {"Authorization": f"Basic {auth}",
                                          "Content-Type": "application/x-www-form-urlencoded"})
        return json.loads(conn.getresponse().read())

    ours_opaque = form_post(pc.port, "/oauth/token", "grant_type=client_credentials", op["client_id"], op["client_secret"])["access_token"]
    peer_opaque = form_post(peer_port, "/token", "grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fopaque.test",
                            "bench", secret)["access_token"]
    u, p = f"http://127.0.0.1:{pc.port}", f"http://127.0.0.1:{peer_port}"
    rows = {
        "ours_cc": measure_once("Portcullis client_credentials ES256", f"{u}/oauth/token", args, method="POST",
                                body="grant_type=client_credentials&scope=read", basic=f"{es['client_id']}:{es['client_secret']}"),
        "peer_cc": measure_once("oidc-provider client_credentials ES256", f"{p}/token", args, method="POST",
                                body="grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fapi.test",
                                basic=f"bench:{secret}"),
        "ours_introspect": measure_once("Portcullis introspect opaque", f"{u}/oauth/introspect", args, method="POST",
                                        body=f"token={ours_opaque}", basic=f"{op['client_id']}:{op['client_secret']}"),
        "peer_introspect": measure_once("oidc-provider introspect opaque", f"{p}/token/introspection", args, method="POST",
                                        body=f"token={peer_opaque}", basic=f"bench:{secret}"),
    }
    peer_rss = rss_kb(peer.pid, "VmHWM") / 1024
    ours_rss = rss_kb(pc.proc.pid, "VmHWM") / 1024
    peer.terminate()
    peer.wait()
    pc.stop()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, {platform_mem()}", "connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "node": node, "rows": rows,
            "peer_rss_mb": peer_rss, "ours_rss_mb": ours_rss}


def thp_off():
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE


def overload_bench(args):
    """Issue 7's bounded overload run: measure the capacity of client_credentials
    (ES256), then offer twice that rate from far more connections than
    server.max_inflight_requests, and check the server sheds the excess with 503 at
    once (no client timeouts, no other statuses), keeps serving near capacity, keeps
    its memory bounded, and is back to normal afterwards."""
    print("overload: fresh server pinned to CPU 0, oha pinned to CPU 1, client_credentials ES256", flush=True)
    work = tempfile.mkdtemp(prefix="portcullis-bench-overload-")
    pc = Portcullis(work, free_port(), cpus="0")
    # Where transparent huge pages are "always", khugepaged folds the server's
    # freed-but-mapped heap into 2 MB pages long after the load, and RSS climbs
    # while the process is idle: that measures the kernel, not the server. The
    # server runs with THP off for itself (prctl PR_SET_THP_DISABLE, inherited
    # through exec) so RSS shows what the process holds.
    pc.preexec = thp_off
    pc.start()
    es = pc.cli("client", "create", "--name", "overload", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256")
    time.sleep(1.5)
    url = f"http://127.0.0.1:{pc.port}/oauth/token"
    kw = dict(method="POST", body="grant_type=client_credentials", basic=f"{es['client_id']}:{es['client_secret']}",
              pin=("taskset", "-c", "1"))
    pid = pc.proc.pid
    dur = args.duration
    oha(url, args.warmup, args.connections, **kw)
    time.sleep(2)
    idle_rss = rss_kb(pid) / 1024
    print(f"  capacity: {dur}s x {args.connections} connections", flush=True)
    cap = oha(url, dur, args.connections, **kw)
    if cap["ok_ratio"] < 0.999:
        raise SystemExit(f"overload: capacity run got {cap['status_codes']} {cap['errors']}")
    # The level memory settles at after ordinary load: what "back to baseline" means.
    time.sleep(10)
    warm_rss = rss_kb(pid) / 1024
    rate = int(2 * cap["rps"])
    conns = 2048
    rounds = []
    for i in range(2):
        print(f"  overload {i + 1}/2: {rate}/s offered (2x capacity) from {conns} connections for {3 * dur}s", flush=True)
        sampler = PeakRss(pid)
        sampler.start()
        over = oha(url, 3 * dur, conns, rate=rate, wait_ongoing=True, **kw)
        peak = sampler.stop() / 1024
        # RSS after the load: sampled for 10 s, the lowest value (the allocator gives
        # memory back as the connections' buffers are freed).
        after = []
        for _ in range(10):
            time.sleep(1)
            after.append(rss_kb(pid) / 1024)
        rounds.append((over, peak, min(after)))
    over, peak, after_rss = rounds[0]
    codes = {}
    errors = {}
    for o, _, _ in rounds:
        for k, v in o["status_codes"].items():
            codes[int(k)] = codes.get(int(k), 0) + v
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    unexpected = {k: v for k, v in codes.items() if k not in (200, 429, 503)}
    shed = codes.get(503, 0) + codes.get(429, 0)
    goodput = min(o["status_codes"].get("200", 0) for o, _, _ in rounds) / (3 * dur)
    print(f"  after: {dur}s x {args.connections} connections at half capacity", flush=True)
    calm = oha(url, dur, args.connections, rate=max(1, int(cap["rps"] / 2)), **kw)
    pc.stop()
    r = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform_mem()}", "capacity": cap, "offered_rate": rate,
        "overload_connections": conns, "overload": over, "shed": shed, "goodput_rps": goodput,
        "unexpected_statuses": unexpected, "idle_rss_mb": idle_rss, "warm_rss_mb": warm_rss, "peak_rss_mb": peak, "after_rss_mb": after_rss,
        "second": {"overload": rounds[1][0], "peak_rss_mb": rounds[1][1], "after_rss_mb": rounds[1][2]},
        "errors": errors,
        "calm": calm, "duration_s": dur, "connections": args.connections,
    }
    problems = []
    if unexpected:
        problems.append(f"statuses other than 200/429/503: {unexpected}")
    if errors:
        problems.append(f"client-side errors (timeouts, resets): {errors}")
    if shed == 0:
        problems.append("nothing was shed: the run did not overload the server")
    if goodput < 0.5 * cap["rps"]:
        problems.append(f"goodput {goodput:.0f}/s fell below half of capacity {cap['rps']:.0f}/s")
    if calm["ok_ratio"] < 0.999:
        problems.append(f"after the overload, not every request succeeded: {calm['status_codes']}")
    if max(p for _, p, _ in rounds) > 512:
        problems.append(f"peak RSS {max(p for _, p, _ in rounds):.0f} MB")
    # Bounded, not leaking: the second overload must not leave the process holding
    # more than the first did.
    for i, (_, _, a) in enumerate(rounds):
        if a > warm_rss * 1.25 + 8:
            problems.append(f"RSS did not come back after overload {i + 1}: {a:.0f} MB against {warm_rss:.0f} MB "
                            "after the capacity run")
    if rounds[1][2] > rounds[0][2] * 1.1 + 8 or rounds[1][1] > rounds[0][1] * 1.1 + 8:
        problems.append(f"memory grew from one overload to the next: peaks {rounds[0][1]:.0f} -> {rounds[1][1]:.0f} MB, "
                        f"after {rounds[0][2]:.0f} -> {rounds[1][2]:.0f} MB")
    write_overload_markdown(r)
    if problems:
        raise SystemExit("overload: " + "; ".join(problems))
    return r


def tls_bench(args):
    """S2: client_credentials with a new TLS 1.3 connection per request (ECDSA P-256
    certificate), per core: the server pinned to CPU 0 and oha to CPU 1. Next to it,
    in the same run: the handshake alone (GET /healthz, new connection each time),
    the same grant over kept-alive TLS, and over kept-alive plain HTTP."""
    import ssl
    print("TLS: fresh server pinned to CPU 0 with an ECDSA P-256 certificate, oha pinned to CPU 1", flush=True)
    work = tempfile.mkdtemp(prefix="portcullis-bench-tls-")
    pc = Portcullis(work, free_port(), cpus="0")
    pc.use_tls()
    pc.start()
    with socket.create_connection(("127.0.0.1", pc.port)) as raw:
        with ssl._create_unverified_context().wrap_socket(raw, server_hostname="localhost") as s:
            negotiated = {"version": s.version(), "cipher": s.cipher()[0]}
    es = pc.cli("client", "create", "--name", "tls", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256")
    time.sleep(1.5)
    basic = f"{es['client_id']}:{es['client_secret']}"
    cc = dict(method="POST", body="grant_type=client_credentials", basic=basic)
    pin = ("taskset", "-c", "1")
    https = f"https://127.0.0.1:{pc.port}"
    runs = [
        ("TLS handshake only: GET /healthz, new connection per request", f"{https}/healthz", {}, True),
        ("S2 client_credentials ES256, new TLS connection per request", f"{https}/oauth/token", cc, True),
        ("client_credentials ES256, TLS, kept-alive connections", f"{https}/oauth/token", cc, False),
    ]
    rows = []
    for name, url, kw, fresh in runs:
        print(f"  {name}: warm-up {args.warmup}s, run {args.duration}s x {args.connections} connections", flush=True)
        oha(url, args.warmup, args.connections, pin=pin, new_connections=fresh, wait_ongoing=True, **kw)
        r = oha(url, args.duration, args.connections, pin=pin, new_connections=fresh, wait_ongoing=True, **kw)
        if r["ok_ratio"] < 0.999 or r["errors"]:
            raise SystemExit(f"tls: {name}: {r['status_codes']} {r['errors']}")
        rows.append({"scenario": name, **r})
    pc.stop()
    plain = Portcullis(tempfile.mkdtemp(prefix="portcullis-bench-tls-plain-"), free_port(), cpus="0")
    plain.start()
    es = plain.cli("client", "create", "--name", "plain", "--grant-type", "client_credentials", "--scope", "read",
                   "--access-token-alg", "ES256")
    time.sleep(1.5)
    name = "client_credentials ES256, plain HTTP, kept-alive connections"
    url = f"http://127.0.0.1:{plain.port}/oauth/token"
    kw = dict(method="POST", body="grant_type=client_credentials", basic=f"{es['client_id']}:{es['client_secret']}")
    print(f"  {name}", flush=True)
    oha(url, args.warmup, args.connections, pin=pin, wait_ongoing=True, **kw)
    r = oha(url, args.duration, args.connections, pin=pin, wait_ongoing=True, **kw)
    if r["ok_ratio"] < 0.999 or r["errors"]:
        raise SystemExit(f"tls: {name}: {r['status_codes']} {r['errors']}")
    rows.append({"scenario": name, **r})
    plain.stop()
    for row in rows:
        row["connections"] = args.connections
    oha_version = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, {platform_mem()}", "cpu": cpu_model(), "negotiated": negotiated,
            "connections": args.connections, "duration_s": args.duration, "warmup_s": args.warmup,
            "oha": oha_version, "rows": rows}


def write_tls_markdown(r):
    rows = r["rows"]
    s2, hs = rows[1], rows[0]
    lines = [
        f"Run {r['date']} on {r['machine']} ({r['cpu']}): `bench/run --only tls`; {r['oha']}, {r['connections']} "
        f"connections, {r['warmup_s']} s warm-up then {r['duration_s']} s per run. The server is pinned to CPU 0 and "
        "oha to CPU 1 (`taskset`), so every figure is **one core's**. Certificate: self-signed ECDSA P-256 "
        f"(openssl); negotiated with the server: {r['negotiated']['version']}, {r['negotiated']['cipher']}. "
        "\"New connection per request\" is oha `--disable-keepalive`: a TCP connect, a full TLS handshake (no "
        "resumption), one request, close.", "",
        "| scenario | req/s (one core) | p50 ms | p99 ms | target |", "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        target = f"≥ 1,200/s per core: {verdict(row['rps'] >= 1200)}" if row is s2 else "—"
        lines.append(f"| {row['scenario']} | {row['rps']:.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {target} |")
    kept = rows[2]
    lines += ["", f"S2 is {s2['rps'] / hs['rps']:.0%} of the bare handshake rate on the same core. A new connection "
              f"costs about {1e6 / s2['rps'] - 1e6 / kept['rps']:.0f} µs of one core over a kept-alive TLS request "
              f"({1e6 / kept['rps']:.0f} µs): TCP setup and teardown, the key exchange and the certificate's ECDSA "
              "signature; TLS on a kept-alive connection costs "
              f"{1 - kept['rps'] / rows[3]['rps']:.0%} of plain HTTP's throughput."]
    lines += ["", chart("tls.svg", "TLS, one core (req/s)",
                        [(row["scenario"], row["rps"], i == 0) for i, row in enumerate(rows)], r["connections"])]
    replace_block("tls", "\n".join(lines), "## S2: a new TLS 1.3 connection per request")
    with open(os.path.join(RESULTS, "tls.json"), "w") as f:
        json.dump(r, f, indent=2)
    print("\n".join(lines))


def write_overload_markdown(r):
    o, c, calm, o2 = r["overload"], r["capacity"], r["calm"], r["second"]
    total = o["requests"] or 1
    mix = ", ".join(f"{k}: {v} ({v / total:.1%})" for k, v in sorted(o["status_codes"].items()))
    lines = [
        f"Run {r['date']} on {r['machine']}: `bench/run --only overload`; `client_credentials` (ES256 JWT, "
        "`client_secret_basic`), default settings. The server is pinned to CPU 0 and oha to CPU 1 (`taskset`), so "
        "the load generator's own work at twice the rate does not take the server's CPU; capacity is therefore "
        "one core's.", "",
        "| phase | offered | connections | req/s answered | 2xx/s | p50 ms | p99 ms | RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        f"| capacity (closed loop) | as fast as answered | {r['connections']} | {c['rps']:.0f} | {c['rps'] * c['ok_ratio']:.0f} | "
        f"{c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {r['idle_rss_mb']:.0f} idle, {r['warm_rss_mb']:.0f} after |",
        f"| overload, {3 * r['duration_s']} s | {r['offered_rate']}/s (2× capacity) | {r['overload_connections']} | "
        f"{o['rps']:.0f} | {o['status_codes'].get('200', 0) / (3 * r['duration_s']):.0f} | {o['p50_ms']:.2f} | {o['p99_ms']:.2f} | "
        f"{r['peak_rss_mb']:.0f} peak, {r['after_rss_mb']:.0f} after |",
        f"| the same overload again | {r['offered_rate']}/s | {r['overload_connections']} | {o2['overload']['rps']:.0f} | "
        f"{o2['overload']['status_codes'].get('200', 0) / (3 * r['duration_s']):.0f} | {o2['overload']['p50_ms']:.2f} | "
        f"{o2['overload']['p99_ms']:.2f} | {o2['peak_rss_mb']:.0f} peak, {o2['after_rss_mb']:.0f} after |",
        f"| afterwards, half capacity | {int(c['rps'] / 2)}/s | {r['connections']} | {calm['rps']:.0f} | "
        f"{calm['rps'] * calm['ok_ratio']:.0f} | {calm['p50_ms']:.2f} | {calm['p99_ms']:.2f} | {o2['after_rss_mb']:.0f} before it |",
        "", f"First overload's status mix: {mix}; client-side errors (timeouts, resets) in both: "
        f"{sum(r['errors'].values()) if r['errors'] else 0}. Goodput under overload (the worse of the two): "
        f"{r['goodput_rps'] / c['rps']:.0%} of capacity. RSS \"after\" is the lowest of 10 samples over the 10 s after "
        "the load; the server runs with transparent huge pages off for itself (see the harness).",
        "", chart("overload.svg", "client_credentials on one core: capacity and goodput under 2x overload (2xx/s)",
                  [("capacity (closed loop)", c["rps"] * c["ok_ratio"], True),
                   ("overload, first", o["status_codes"].get("200", 0) / (3 * r["duration_s"]), False),
                   ("overload, second", o2["overload"]["status_codes"].get("200", 0) / (3 * r["duration_s"]), False),
                   ("afterwards, half capacity offered", calm["rps"] * calm["ok_ratio"], False)], r["connections"]),
    ]
    replace_block("overload", "\n".join(lines), "## Overload: 2× capacity (issue 7)")
    with open(os.path.join(RESULTS, "overload.json"), "w") as f:
        json.dump(r, f, indent=2)
    print("\n".join(lines))


def write_peer_markdown(r):
    x = r["rows"]
    lines = [f"Run {r['date']} on {r['machine']}; oha, {r['connections']} connections, {r['warmup_s']} s warm-up then "
             f"{r['duration_s']} s per run, the two servers measured back to back; oidc-provider 9.13.3 on node {r['node']} "
             "(one process, so one core), Portcullis one process on both cores.", "",
             "| scenario | Portcullis req/s | p99 ms | oidc-provider req/s | p99 ms | ratio | target |", "|---|---:|---:|---:|---:|---:|---|"]
    for label, a, b in [("client_credentials, ES256 JWT, client_secret_basic", "ours_cc", "peer_cc"),
                        ("introspection of an opaque token", "ours_introspect", "peer_introspect")]:
        ratio = x[a]["rps"] / x[b]["rps"]
        lines.append(f"| {label} | {x[a]['rps']:.0f} | {x[a]['p99_ms']:.2f} | {x[b]['rps']:.0f} | {x[b]['p99_ms']:.2f} | "
                     f"{ratio:.1f}× | ≥ 5×: {verdict(ratio >= 5)} |")
    lines += ["", f"Peak RSS (VmHWM): Portcullis {r['ours_rss_mb']:.0f} MB, oidc-provider {r['peer_rss_mb']:.0f} MB.", "",
              chart("peer.svg", "Portcullis and node oidc-provider (req/s)",
                    [("oidc-provider client_credentials", x["peer_cc"]["rps"], True),
                     ("Portcullis client_credentials", x["ours_cc"]["rps"], False),
                     ("oidc-provider introspection", x["peer_introspect"]["rps"], True),
                     ("Portcullis introspection", x["ours_introspect"]["rps"], False)], r["connections"])]
    replace_block("peer", "\n".join(lines), "## Side by side: node oidc-provider")
    with open(os.path.join(RESULTS, "peer.json"), "w") as f:
        json.dump(r, f, indent=2)
    print("\n".join(lines))


# What the interleaved rounds measure, in order: (key, label, the main-table scenario whose
# target in TARGETS it is judged on, or None, baseline key).
# Each round starts with B1; each token endpoint run follows its own B2 run.
AB_PATHS = [("jwt", "forward-auth JWT", "forward-auth JWT (cached)", "B1"),
            ("key", "forward-auth API key", "forward-auth API key (cached)", "B1"),
            ("introspect", "introspect opaque", "introspect opaque", "B1"),
            ("introspect_jwt", "introspect JWT (ES256)", "introspect JWT (ES256)", "B1"),
            ("verify", "keys/verify (cached key)", "keys/verify (cached key)", "B1"),
            ("jwks", "JWKS", "JWKS", "B1"), ("discovery", "discovery", "discovery", "B1"),
            ("bare", JWKS_BARE, None, "B1"),
            ("B2es", "B2 sign-only ES256", None, None), ("cc_es", "client_credentials ES256", "client_credentials ES256", "B2es"),
            ("B2ed", "B2 sign-only EdDSA", None, None), ("cc_ed", "client_credentials EdDSA", "client_credentials EdDSA", "B2ed")]
AB_BASELINES = {"B1": "B1 trivial axum JSON", "B2es": "B2 sign-only ES256", "B2ed": "B2 sign-only EdDSA"}


def ab_bench(args, pairs=3):
    """Every ratio target's scenario next to its baseline, interleaved: B1, the light
    paths (forward-auth with a JWT and an API key, introspection of an opaque token and
    of a JWT, keys/verify, JWKS, discovery and the bare JWKS-shaped answer), then B2 ES256 and
    `client_credentials` ES256, B2 EdDSA and `client_credentials` EdDSA; `pairs` rounds,
    so that the machine's drift hits baselines and scenarios alike. Runs are 3 s in a
    full run and 1 s with --quick (the main table's are 10 s and 2 s)."""
    print("interleaved rounds: light paths against B1, tokens against B2", flush=True)
    work = tempfile.mkdtemp(prefix="portcullis-bench-ab-")
    pc = Portcullis(work, free_port())
    pc.start()
    es = pc.cli("client", "create", "--name", "ab", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "ES256")
    ed = pc.cli("client", "create", "--name", "ab-eddsa", "--grant-type", "client_credentials", "--scope", "read",
                "--access-token-alg", "EdDSA")
    op = pc.cli("client", "create", "--name", "ab-opaque", "--grant-type", "client_credentials", "--scope", "read",
                "--token-format", "opaque", "--access-token-ttl", "1d")
    verifier = pc.cli("admin-token", "create", "--scope", "keys:verify", "--name", "ab")["token"]
    pc.cli("keyspace", "create", "--name", "ab", "--prefix", "ab_live", "--scope", "read")
    key = pc.cli("apikey", "create", "--keyspace", "ab", "--owner", "ab", "--scope", "read")["key"]
    time.sleep(1.5)
    jwt_token, opaque_token = client_token(pc.port, es), client_token(pc.port, op)
    base_port = free_port()
    base = subprocess.Popen([BASE_BIN, f"127.0.0.1:{base_port}"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    u, b = f"http://127.0.0.1:{pc.port}", f"http://127.0.0.1:{base_port}"
    short = argparse.Namespace(**{**vars(args), "duration": max(1, args.duration * 3 // 10),
                                  "warmup": min(1, args.warmup)})
    basic = lambda c: f"{c['client_id']}:{c['client_secret']}"
    runs = {
        "jwt": dict(url=f"{u}/auth/verify", bearer=jwt_token),
        "key": dict(url=f"{u}/auth/verify", headers=[f"X-Api-Key: {key}"]),
        "introspect": dict(url=f"{u}/oauth/introspect", method="POST", body=f"token={opaque_token}", basic=basic(op)),
        "introspect_jwt": dict(url=f"{u}/oauth/introspect", method="POST", body=f"token={jwt_token}", basic=basic(es)),
        "verify": dict(url=f"{u}/api/v1/keys/verify", method="POST", body=json.dumps({"key": key, "scopes": ["read"]}),
                       bearer=verifier, content_type="application/json"),
        "jwks": dict(url=f"{u}/jwks.json"),
        "discovery": dict(url=f"{u}/.well-known/openid-configuration"),
        "bare": dict(url=f"{b}/jwks-shaped"),
        "B2es": dict(url=f"{b}/sign/ES256", method="POST", body=""),
        "cc_es": dict(url=f"{u}/oauth/token", method="POST", body="grant_type=client_credentials", basic=basic(es)),
        "B2ed": dict(url=f"{b}/sign/EdDSA", method="POST", body=""),
        "cc_ed": dict(url=f"{u}/oauth/token", method="POST", body="grant_type=client_credentials", basic=basic(ed)),
    }
    rounds = []
    for i in range(pairs):
        r = {"B1": measure_once(f"B1 (round {i + 1})", f"{b}/trivial", short)}
        for k, label, _, _ in AB_PATHS:
            kw = dict(runs[k])
            r[k] = measure_once(f"{label} (round {i + 1})", kw.pop("url"), short, **kw)
        rounds.append(r)
    pc.stop()
    base.terminate()
    base.wait()
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, {platform_mem()}", "connections": args.connections,
            "duration_s": short.duration, "warmup_s": short.warmup, "rounds": rounds}


def write_ab_markdown(r):
    n = len(r["rounds"])
    lines = [f"Run {r['date']} on {r['machine']}; oha, {r['connections']} connections, {r['warmup_s']} s warm-up then "
             f"{r['duration_s']} s per run; each round runs B1, then each light path, then each B2 followed by its "
             "token endpoint run; rate limiting (unreachable budgets) and the audit context on. Each ratio is to the "
             "same round's baseline; cells are ratio (req/s).", "",
             "| scenario | against | " + " | ".join(f"round {i}" for i in range(1, n + 1)) + " | median | target |",
             "|---|---|" + "---:|" * n + "---:|---|"]
    med = lambda v: sorted(v)[len(v) // 2]
    lines.append(f"| {AB_BASELINES['B1']} | — | " + " | ".join(f"{x['B1']['rps']:.0f}" for x in r["rounds"])
                 + f" | {med([x['B1']['rps'] for x in r['rounds']]):.0f} | — |")
    medians = {}
    for k, label, scenario, base in AB_PATHS:
        target = TARGETS[scenario][1] if scenario else None
        if base is None:
            lines.append(f"| {label} | — | " + " | ".join(f"{x[k]['rps']:.0f}" for x in r["rounds"])
                         + f" | {med([x[k]['rps'] for x in r['rounds']]):.0f} | — |")
            continue
        ratios = [x[k]["rps"] / x[base]["rps"] for x in r["rounds"]]
        medians[k] = med(ratios)
        tgt = f"≥ {target:.0%}: {verdict(medians[k] >= target)}" if target else "— (the ceiling for JWKS)"
        lines.append(f"| {label} | {AB_BASELINES[base]} | "
                     + " | ".join(f"{q:.0%} ({x[k]['rps']:.0f})" for q, x in zip(ratios, r["rounds"]))
                     + f" | {medians[k]:.1%} | {tgt} |")
    jw = [x["jwks"]["rps"] / x["bare"]["rps"] for x in r["rounds"]]
    lines += ["", f"JWKS against the same answer served bare: median {med(jw):.0%}.", "",
              chart("light-paths.svg", "Interleaved rounds, median req/s",
                    [(AB_BASELINES["B1"], med([x["B1"]["rps"] for x in r["rounds"]]), True)]
                    + [(label, med([x[k]["rps"] for x in r["rounds"]]), base is None) for k, label, _, base in AB_PATHS],
                    r["connections"])]
    with open(os.path.join(RESULTS, "rounds.json"), "w") as f:
        json.dump({**r, "medians": medians}, f, indent=2)
    replace_block("ab", "\n".join(lines), "## Interleaved rounds: every ratio next to its own baseline")
    print("\n".join(lines))


def write_scorecard():
    """Issue 6's targets in one table, each judged on the figure its section names,
    from whatever results/*.json the runs so far have left (each line says which run).
    Ratio targets are judged on the interleaved rounds' median (each ratio next to its
    own baseline, so the machine's drift between a baseline and its scenario does not
    enter), with the main table's single 10 s run beside it."""
    def load(name):
        try:
            with open(os.path.join(RESULTS, name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None
    main, rounds, signin, peer, verify, tls = (load(n) for n in (
        "latest.json", "rounds.json", "signin.json", "peer.json", "verify.json", "tls.json"))
    rows = []

    def row(target, figure, source, ok):
        rows.append(f"| {target} | {figure} | {source} | {verdict(ok) if ok is not None else 'no verdict'} |")

    def stamp(r):
        return r["date"][:16].replace("T", " ") if r else "—"
    by = {x["scenario"]: x for x in main["load"]} if main else {}
    med = rounds.get("medians", {}) if rounds else {}
    base_names = {"B1": "B1", "B2es": "B2", "B2ed": "B2"}
    ratio_targets = []
    for key, label, scenario, base in AB_PATHS:
        if scenario is None:
            continue
        section, target, p99 = TARGETS[scenario]
        text = f"{section} `{label}` ≥ {target:.0%} of {base_names[base]}"
        if p99 is not None:
            text += f"; p99 ≤ {p99:g} ms at half load"
        ratio_targets.append((text, key, scenario, target, p99))
    for label, key, scenario, target, p99 in ratio_targets:
        m = by.get(scenario)
        if key not in med and m is None:
            row(label, "—", "—", None)
            continue
        parts, ok = [], True
        if key in med:
            parts.append(f"{med[key]:.1%} (rounds median)")
            ok = med[key] >= target
        if m is not None and m.get("ratio") is not None:
            parts.append(f"{m['ratio']:.0%} (main table)")
            if key not in med:
                ok = m["ratio"] >= target
        if p99 is not None:
            if m is None:
                ok = None
            else:
                parts.append(f"p99 {m['p99_half_ms']:.2f} ms at half load")
                ok = ok and m["p99_half_ms"] <= p99
        source = f"rounds {stamp(rounds)}, main {stamp(main)}" if rounds and main else stamp(rounds or main)
        row(label, "; ".join(parts), source, ok)
    if tls:
        s2 = next((x for x in tls["rows"] if x["scenario"].startswith("S2")), None)
        if s2:
            row("S2 new TLS 1.3 connection per request ≥ 1,200/s per core", f"{s2['rps']:,.0f}/s on one core",
                stamp(tls), s2["rps"] >= 1200)
    if signin:
        per_core = signin["refresh"]["rps"] / signin["cores"]
        row("S3 `refresh_token` rotation, durable SQLite ≥ 1,200/s per core", f"{per_core:,.0f}/s per core",
            stamp(signin), per_core >= 1200)
        pg = signin.get("refresh_postgres")
        if pg:
            rows.append(f"| S3 `refresh_token` rotation on PostgreSQL: report | {pg['rps'] / signin['cores']:,.0f}/s "
                        f"per core (PostgreSQL {pg['postgres'].get('server_version')}, fsync "
                        f"{pg['postgres'].get('fsync')}, same machine) | {stamp(signin)} | reported |")
        else:
            rows.append("| S3 on PostgreSQL: report | not measured in this run: no PostgreSQL server given "
                        "(PORTCULLIS_BENCH_DATABASE_URL) | — | — |")
        ratios = sorted(x["login"]["rps"] / x["b3"]["rps"] for x in signin["rounds"])
        m6 = ratios[len(ratios) // 2]
        row("S6 password login ≥ 90% of B3 (Argon2id)",
            f"{m6:.1%} (rounds median); {signin['login']['rps'] / signin['b3']['rps']:.0%} "
            f"({signin['duration_s']} s pair)",
            stamp(signin), m6 >= 0.90)
    if main:
        row("S7 RSS idle ≤ 32 MB", f"{main['idle_rss_mb']:.1f} MB", stamp(main), main["idle_rss_mb"] <= 32)
        cached = [k for k in main["key_scale"] if "rss_with_cache_mb" in k]
        if cached:
            c = cached[0]
            full = c["cached_keys"] >= 100000  # --quick caches 20,000: no verdict then
            row("S7 RSS with 100k cached API keys ≤ 150 MB",
                f"{c['rss_with_cache_mb']:.0f} MB with {c['cached_keys']:,} cached", stamp(main),
                c["rss_with_cache_mb"] <= 150 if full else None)
    if verify:
        worst = min(v["raw_verify"] / v["library_verify"] for v in verify["rows"].values())
        row("S8 library verification ≥ 90% of raw verify, same algorithm",
            f"{worst:.1%} (the lowest of {len(verify['rows'])} algorithms)", stamp(verify), worst >= 0.90)
    if peer:
        for key, what in (("cc", "`client_credentials`"), ("introspect", "introspection")):
            q = peer["rows"][f"ours_{key}"]["rps"] / peer["rows"][f"peer_{key}"]["rps"]
            row(f"Peer: {what} ≥ 5× node oidc-provider", f"{q:.1f}×", stamp(peer), q >= 5)
    lines = ["Each of issue 6's targets, judged on the figure named (from `bench/results/*.json`, the run's time in UTC; "
             "the sections below hold every figure):", "",
             "| target | figure | run | verdict |", "|---|---|---|---|", *rows]
    replace_block("scorecard", "\n".join(lines), "## Targets at a glance")
    print("\n".join(lines))


def platform_mem():
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return f"{kb / 1024 / 1024:.0f} GiB"
    except OSError:
        return "unknown memory"


def cpu_model():
    """The CPU's name, family and model, and whether it has AVX-512 (aws-lc's RSA
    runs about 2.5 times faster with it): a VM's "AMD EPYC" alone hides the generation."""
    facts = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                facts.setdefault(k.strip(), v.strip())
    except OSError:
        return "unknown CPU"
    name = facts.get("model name", "unknown CPU")
    flags = facts.get("flags", "").split()
    return (f"{name}, family {facts.get('cpu family', '?')} model {facts.get('model', '?')}, "
            f"{'with' if 'avx512f' in flags else 'no'} AVX-512")


def verdict(ok):
    return "met" if ok else "**missed**"


def write_markdown(r):
    lines = [f"Run {r['date']} on {r['machine']} ({r.get('cpu', 'unknown CPU')}); oha, {r['connections']} connections, "
             f"{r['warmup_s']} s warm-up then {r['duration_s']} s per run; the half-load run ({max(1, r['duration_s'] * 3 // 10)} s) "
             f"is at half the measured maximum rate. Server and load generator share the machine's cores. "
             + ("Tools: " + "; ".join(v if v.startswith(k) else f"{k} {v}" for k, v in r["versions"].items()) + ". "
                if r.get("versions") else "")
             + "Every oha command is printed in the run's log.", "",
             "| scenario | req/s | p50 ms | p99 ms | p99 ms at half load | peak RSS MB | ratio to baseline | target |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for x in r["load"]:
        ratio = f"{x['ratio']:.0%} of {x['baseline']}" if x["ratio"] is not None else "baseline"
        tgt = "—"
        if x["target_ratio"] is not None:
            p99_target = TARGETS[x["scenario"]][2]
            ok = x["ratio"] >= x["target_ratio"] and (p99_target is None or x["p99_half_ms"] <= p99_target)
            lat = f" and p99 ≤ {p99_target:g} ms at half load" if p99_target else ""
            tgt = f"≥ {x['target_ratio']:.0%}{lat}: {verdict(ok)}"
        lines.append(f"| {x['scenario']} | {x['rps']:.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | "
                     f"{x['p99_half_ms']:.2f} | {x['peak_rss_mb']:.1f} | {ratio} | {tgt} |")
    lines += ["",
              "| process figure | value | target |", "|---|---:|---|",
              f"| start to ready, existing database (median of 5, spawn → `/readyz` 200) | {r['start_to_ready_ms']:.0f} ms | < 200 ms: {verdict(r['start_to_ready_ms'] < 200)} |",
              f"| first start (creates DB, master key, 4 signing keys incl. 2 RSA-2048) | {r['first_start_s'] * 1000:.0f} ms | — |",
              f"| idle RSS after start | {r['idle_rss_mb']:.1f} MB | ≤ 32 MB: {verdict(r['idle_rss_mb'] <= 32)} |",
              f"| server peak RSS over all runs (VmHWM) | {r['server_peak_rss_mb']:.1f} MB | — |"]
    by = {x["scenario"]: x for x in r["load"]}
    if "JWKS" in by and JWKS_BARE in by:
        jw, bare = by["JWKS"], by[JWKS_BARE]
        lines += ["", f"S5 against the same answer served bare: the JWKS ({jw['rps']:.0f} req/s) is "
                  f"{jw['rps'] / bare['rps']:.0%} of `{JWKS_BARE}` ({bare['rps']:.0f} req/s), a key set of the same "
                  f"four key types with the same response headers from a bare axum handler, which is itself "
                  f"{bare['ratio']:.0%} of B1: that is what the 1.3 KB answer costs before any middleware."]
    ov = r.get("anomaly_overhead") or {}
    if ov:
        n = len(next(iter(ov.values()))["pairs"])
        lines += ["", "Cost of anomaly detection on the verification paths (two fresh servers with the same key, "
                  "both started before either is measured; throughput lost when on, in pairs of runs back to back: "
                  "the two rows in the table above, on then off for keys/verify and off then on for forward-auth"
                  + (f", then {n - 1} shorter pairs per path ({max(1, r['duration_s'] * 3 // 10)} s), alternating which "
                     "goes first; the median pair is the figure" if n > 1 else "")
                  + "; successful verifications are counted, not audited one by one, so the audit trail adds "
                  "nothing to this path):", "",
                  "| path | throughput cost | each pair | target |", "|---|---:|---|---|"]
        for name, cost in ov.items():
            each = ", ".join(f"{c:.1%}" for c in cost["pairs"])
            lines.append(f"| {name} | {cost['median']:.1%} | {each} | < 10%: {verdict(cost['median'] < 0.10)} |")
    sc = r.get("key_scale") or []
    if len(sc) >= 2:
        small, big = sc[0], sc[-1]
        ratio = big["cold_p99_us"] / small["cold_p99_us"]
        lines += ["", "API-key verification at scale (`portcullis-bench-keyscale`, in-process through the service's verification path, "
                  "SQLite; each sampled key verified once with a cold cache, then again warm, in "
                  f"{small.get('rounds', 1)} rounds, one key of each size in turn, each round's keys read by a new authority "
                  "per size with an empty key cache; a table with fewer keys than the sample is read whole in every round):", "",
                  "| keys stored | sampled | cold p50 µs | cold p99 µs | warm p50 µs | warm p99 µs |", "|---:|---:|---:|---:|---:|---:|"]
        for x in sc:
            lines.append(f"| {x['keys_stored']:,} | {x['sample']:,} | {x['cold_p50_us']:.0f} | {x['cold_p99_us']:.0f} | "
                         f"{x['warm_p50_us']:.1f} | {x['warm_p99_us']:.1f} |")
        lines += ["", f"Cold p99 with {big['keys_stored']:,} keys is {ratio:.2f}× that with {small['keys_stored']:,} keys "
                  f"(target ≤ 1.5×: {verdict(ratio <= 1.5)})."]
        if "rss_with_cache_mb" in big:
            lines.append(f"Process RSS with {big['cached_keys']:,} keys cached: {big['rss_with_cache_mb']:.0f} MB "
                         f"(before caching: {big['rss_before_cache_mb']:.0f} MB; target < 150 MB: {verdict(big['rss_with_cache_mb'] < 150)}).")
    if r["criterion_us"]:
        lines += ["", "Criterion (`cargo bench -p portcullis-core --bench jose`), mean µs per operation; throughput ratio = raw time / JWT time:", "",
                  "| alg | raw sign | JWT sign | sign ratio (target ≥ 80%) | raw verify | JWT verify | verify ratio (target ≥ 90%) |",
                  "|---|---:|---:|---|---:|---:|---|"]
        for alg, c in r["criterion_us"].items():
            sr, vr = c["raw_sign"] / c["jwt_sign"], c["raw_verify"] / c["jwt_verify"]
            lines.append(f"| {alg} | {c['raw_sign']:.2f} | {c['jwt_sign']:.2f} | {sr:.0%}: {verdict(sr >= 0.8)} | "
                         f"{c['raw_verify']:.2f} | {c['jwt_verify']:.2f} | {vr:.0%}: {verdict(vr >= 0.9)} |")
    block = "\n".join(lines)
    path = BENCH_MD
    text = open(path).read()
    head, rest = text.split("<!-- results:start -->")
    _, tail = rest.split("<!-- results:end -->")
    with open(path, "w") as f:
        f.write(f"{head}<!-- results:start -->\n{block}\n<!-- results:end -->{tail}")


if __name__ == "__main__":
    began = time.monotonic()
    main()
    write_scorecard()  # after any section: the table reads every section's latest results
    print(f"bench/run.py finished in {time.monotonic() - began:.0f} s (the release build before it not included; "
          "on a first run it also builds the criterion benchmarks, before the sections' clock starts)", flush=True)
