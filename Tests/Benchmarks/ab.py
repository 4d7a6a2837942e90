#!/usr/bin/env python3
"""Interleaved A/B of gateway builds (or environment settings) against HAProxy, in one run.

run.sh compares the gateway with its anchors; this script compares gateway variants with each other, which on a
noisy 2-core machine only works when they run minutes apart at most: every variant, HAProxy (plain and with
jwt_verify) and one nginx origin are started once, side by side, and each round measures every one of them in
turn. Each line gives req/s, the proxy's CPU µs per request, the machine's idle share and the load generator's
CPU µs per request; the summary gives medians and each variant's median ratio to HAProxy in the same rounds.

    Tests/Benchmarks/ab.py --variant base=OLD_BINARY --variant new=.build/release/myorg-gateway \\
        [--variant tuned=BINARY:NAME=VALUE,NAME=VALUE] [--rounds 5] [--modes fresh,pass,h2pass] [--loops 2]

Modes (the loads run.sh uses, on one wrk or h2load thread):
  fresh   full policy on /my-org/details, a token never seen before on every request (wrk, 16 connections)
  h2fresh the same over HTTP/2 (h2fresh.c, built here: 16 connections, 10 streams each)
  rotate  full policy, 64 tokens over 64 organizations, reused (wrk, 16 connections)
  pass    HTTP/1.1 pass-through on the custom domain (wrk, 16 connections)
  h2pass  HTTP/2 pass-through (h2load, 16 connections, 10 streams each)
  big     HTTP/1.1 pass-through of a 1 MiB answer (wrk, 16 connections): the cost of streaming a body
  h2big   the same over HTTP/2 (h2load, 16 connections, 4 streams each)
  close   HTTP/1.1 pass-through with `Connection: close`: a full TLS handshake and a close per request (wrk)
  hog     mean latency at 2,000 req/s over HTTP/2 (h2load --rps) beside two threads spinning on the cores:
          what a CPU-bound neighbour in the same pod does to the proxy ("req/s" then reads "mean latency µs")
The environment after a variant's binary is set for that gateway only, for settings a temporary build reads.
--gateway-log has every variant write its log events to a file (the full-policy rows then log every request).
--counts adds each proxy's system calls, context switches and CPU migrations per request (perf stat, as root);
--profile DIR samples every measured run with perf record, for perf report (as root).

Everything listens on 127.0.0.1 on free ports; every process started here is stopped by its PID at the end;
every load is bounded in time. Not run by CI.
"""
import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (the helpers run.sh uses: idle sampling, wrk parsing)

CANONICAL, CUSTOM, CLIENT, ORIGIN = "acme.bench.test", "login.bench.test", "bench-client", "https://app.bench.test"
MODES = ("fresh", "h2fresh", "rotate", "pass", "h2pass", "big", "h2big", "close", "hog")


def parse_variant(text):
    name, _, rest = text.partition("=")
    binary, _, settings = rest.partition(":")
    if not name or not binary:
        sys.exit(f"ab.py: --variant wants NAME=BINARY[:NAME=VALUE,...], not {text!r}")
    env = dict(pair.split("=", 1) for pair in settings.split(",") if pair)
    return name, os.path.abspath(binary), env


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="myorg-ab.")
        self.procs = []

    def sh(self, command):
        subprocess.run(command, shell=True, check=True, cwd=self.dir)

    def render(self, template, out, **values):
        pairs = [f"{k}={v}" for k, v in values.items()]
        subprocess.run([sys.executable, f"{HERE}/bench.py", "render", f"{HERE}/templates/{template}", out] + pairs,
                       check=True, cwd=self.dir)

    def start(self, argv, env=None, log=None):
        full = dict(os.environ, **(env or {}))
        with open(os.path.join(self.dir, log) if log else os.devnull, "w") as out:
            p = subprocess.Popen(argv, env=full, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def stop(self):
        # SIGTERM first: nginx's master stops its workers only then (SIGKILL would orphan them).
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    def setup(self, variants):
        a = self.args
        self.sh(f'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN={CANONICAL}" '
                f'-addext "subjectAltName=DNS:{CANONICAL},DNS:{CUSTOM}" -keyout key.pem -out cert.pem 2>/dev/null; '
                "cat cert.pem key.pem > haproxy.pem")
        first = variants[0][1]
        if "h2fresh" in a.modes.split(","):
            self.sh(f"cc -O2 -o h2fresh {HERE}/h2fresh.c -lnghttp2 -lssl -lcrypto")
        self.sh(f"{first} token --org org_bench0000000 --scope read:my_org:details --client {CLIENT} "
                f"--domain {CANONICAL} --key sign.pem > template.txt")
        self.sh(f"{first} token --print-jwks --key sign.pem > jwks.json; openssl pkey -in sign.pem -pubout -out jwt-public.pem")
        self.sh("for i in $(seq 0 63); do printf 'org_bench%07d\\n' $i; done > orgs.txt")
        self.sh(f"{sys.executable} {HERE}/bench.py mint --key sign.pem --template template.txt --orgs orgs.txt "
                "--count 64 --procs 1 --out tokens.txt")
        # All at once (see bench.free_ports): origin over TLS and plain, two HAProxies, two listeners per variant.
        ports = bench.free_ports(4 + 2 * len(variants))
        origin_tls, self.origin, jwt_port, plain_port = ports[:4]
        os.makedirs(os.path.join(self.dir, "nginx-tmp"), exist_ok=True)
        # The big modes' answer; nginx's workers (nobody) must be able to read it.
        with open(os.path.join(self.dir, "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        os.chmod(self.dir, 0o755)
        os.chmod(os.path.join(self.dir, "big.bin"), 0o644)
        self.render("nginx.conf", "nginx.conf", DIR=self.dir, WORKERS=a.loops, TLS_PORT=origin_tls,
                    HTTP_PORT=self.origin, BODY='{"id":"org_bench"}')
        self.start(["nginx", "-e", f"{self.dir}/nginx-error.log", "-p", self.dir, "-c", f"{self.dir}/nginx.conf"])
        self.render("haproxy-jwt.cfg", "haproxy-jwt.cfg", DIR=self.dir, THREADS=a.loops, PORT=jwt_port,
                    ORIGIN_PORT=self.origin, BACKEND_CONNS=256, ISS=f"https://{CANONICAL}/",
                    AUD=f"https://{CANONICAL}/my-org/", CLIENT=CLIENT, CORS_ORIGIN=ORIGIN, TENANT_RPS=1000000,
                    ORG_RPS=1000000)
        self.render("haproxy.cfg", "haproxy.cfg", DIR=self.dir, THREADS=a.loops, PORT=plain_port,
                    ORIGIN_PORT=self.origin, BACKEND_CONNS=256)
        self.sh(f"cp {HERE}/templates/tiers-bench.yaml tiers-bench.yaml")
        jwt = self.start(["haproxy", "-db", "-f", f"{self.dir}/haproxy-jwt.cfg"])
        plain = self.start(["haproxy", "-db", "-f", f"{self.dir}/haproxy.cfg"])
        # (name, PID serving the policy rows, its port, PID serving pass-through, its port)
        self.targets = [("haproxy", jwt.pid, jwt_port, plain.pid, plain_port)]
        for index, (name, binary, env) in enumerate(variants):
            canonical, custom = ports[4 + 2 * index : 6 + 2 * index]
            self.render("gateway.yaml", f"{name}.yaml", CANONICAL=CANONICAL, CUSTOM=CUSTOM,
                        TIERS_LINE="tiers_file: tiers-bench.yaml", PORT_CUSTOM=custom, PORT_CANONICAL=canonical,
                        ORIGIN_PORT=self.origin, BACKEND_CONNS=256, CLIENT=CLIENT, CORS_ORIGIN=ORIGIN,
                        SINKS=f"[{{ file: {{ path: {self.dir}/{name}-events.jsonl, max_bytes: 4294967296 }} }}]"
                        if a.gateway_log else "[]")
            gw = self.start([binary, "serve", "--config", f"{self.dir}/{name}.yaml", "--loops", str(a.loops)],
                            env=dict(env, BENCH_CNAME_API_KEY="ab-not-a-secret"), log=f"{name}.log")
            self.targets.append((name, gw.pid, canonical, gw.pid, custom))
        for _ in range(100):
            if all(self.listening(t[2]) and self.listening(t[4]) for t in self.targets):
                return
            time.sleep(0.1)
        sys.exit(f"ab.py: not every proxy is listening; logs in {self.dir}")

    @staticmethod
    def listening(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def commands(self, mode, policy_port, pass_port):
        a, lua = self.args, f"{HERE}/lua/tokens.lua"
        policy = f"https://127.0.0.1:{policy_port}/my-org/details"
        passthrough = f"https://127.0.0.1:{pass_port}/bench"
        wrk = ["wrk", "-t1", f"-c{a.conns}"]
        tokens = [policy, "--", f"{self.dir}/tokens.txt", "rotate", ORIGIN, CANONICAL, "1"]
        if mode == "fresh":
            # The thread stops when the tokens run out; -d only bounds the wait. Warmed with the reused tokens.
            return (wrk + ["-d1s", "-s", lua] + tokens,
                    wrk + [f"-d{a.duration + 30}s", "-s", lua, policy, "--", f"{self.dir}/fresh.txt", "fresh", ORIGIN,
                           CANONICAL, "1"])
        if mode == "h2fresh":
            # Warmed with the first reused token (h2load sends one set of headers), measured with new ones.
            with open(f"{self.dir}/tokens.txt") as f:
                first = f.readline().strip()
            h2 = ["h2load", "-t1", f"-c{a.conns}", "-m10", "-H", f":authority: {CANONICAL}", "-H",
                  f"origin: {ORIGIN}", "-H", f"authorization: Bearer {first}"]
            return (h2 + ["-D", "1", policy],
                    [f"{self.dir}/h2fresh", "127.0.0.1", str(policy_port), CANONICAL, "/my-org/details",
                     f"{self.dir}/h2fresh.txt", str(a.conns), "10", str(a.duration + 30), ORIGIN])

        def warmed(args):
            """A 1 s warm-up of wrk with `args`, then the measured run."""
            return wrk + ["-d1s"] + args, wrk + [f"-d{a.duration}s"] + args

        if mode == "rotate":
            return warmed(["-s", lua] + tokens)
        if mode == "pass":
            return warmed(["-H", f"Host: {CUSTOM}", passthrough])
        if mode == "h2pass":
            h2 = ["h2load", "-t1", f"-c{a.conns}", "-m10"]
            return h2 + ["-D", "1", passthrough], h2 + ["-D", str(a.duration), passthrough]
        if mode == "close":
            return warmed(["-H", "Connection: close", "-H", f"Host: {CUSTOM}", passthrough])
        big = f"https://127.0.0.1:{pass_port}/big"
        if mode == "big":
            return warmed(["-H", f"Host: {CUSTOM}", big])
        if mode == "h2big":
            h2 = ["h2load", "-t1", f"-c{a.conns}", "-m4"]
            return h2 + ["-D", "1", big], h2 + ["-D", str(a.duration), big]
        h2 = ["h2load", "-t1", "-c4", "-m1"]
        return h2 + ["-D", "1", passthrough], h2 + ["--rps", "500", "-D", str(a.duration), passthrough]

    def measure(self, mode, target, round_index=0):
        name, policy_pid, policy_port, pass_pid, pass_port = target
        pid = policy_pid if mode in ("fresh", "h2fresh", "rotate") else pass_pid
        warm, run = self.commands(mode, policy_port, pass_port)
        subprocess.run(warm, capture_output=True, timeout=60)
        hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)] if mode == "hog" else []
        counter = profiler = None
        try:
            if hogs:
                time.sleep(0.3)
            counter = ThreadCounter() if self.args.counts else None
            if self.args.profile:
                os.makedirs(self.args.profile, exist_ok=True)
                data = os.path.join(self.args.profile, f"{round_index + 1}-{mode}-{name}-{pid}.data")
                profiler = PerfSession(["perf", "record", "-a", "-F", "4999", "-g", "-q", "-o", data])
            client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu0, t0 = bench.tree_ticks([pid]), time.monotonic()
            with bench.IdleSampler() as idle:
                out = subprocess.run(run, capture_output=True, text=True, timeout=self.args.duration + 60).stdout
            cpu1, wall = bench.tree_ticks([pid]), time.monotonic() - t0
            client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            counts = counter.stop(pid) if counter else {}
        finally:
            if profiler:
                profiler.end()
            for h in hogs:
                h.kill()
                h.wait()
            if counter:
                counter.close()
        busy = wall
        if mode in ("fresh", "h2fresh", "rotate", "pass", "big", "close"):
            r = bench.parse_wrk(out)
            n = sum((r.get("statuses") or {}).values()) or r.get("requests", 0)
            figure = r.get("rps", 0.0)
            if mode in ("fresh", "h2fresh") and r.get("active_s"):
                busy = r["active_s"]
                figure = n / busy
        else:
            r = bench.parse_h2load([out], [])
            n = r["requests"] - r["failed"] - r["errored"]
            figure = r["rps"]
            if mode == "hog":
                m = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
                figure = bench._to_ms(*m.groups()) * 1000.0 if m else float("nan")
        if n == 0:
            print(f"  {name}: no requests completed; output:\n{out[-2000:]}", file=sys.stderr)
            return None
        client = (client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime) * 1e6 / n
        return dict(figure=figure, cpu=(cpu1 - cpu0) / bench.CLK_TCK * 1e6 / n, client=client,
                    idle=idle.idle_pct(t0 + 0.1, t0 + busy - 0.1),
                    counts={event: value / n for event, value in counts.items()})


def format_counts(counts):
    return "".join(f"  {event} {value:4.2f}/req" for event, value in counts.items())


class PerfSession:
    """A `perf` command over the whole machine for as long as one run lasts: its workload is a sleep that
    `end` stops, so that perf writes its output then."""

    def __init__(self, argv):
        self.perf = subprocess.Popen(argv + ["--", "sleep", "3600"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)

    def end(self):
        if self.perf.poll() is not None:
            return
        try:
            with open(f"/proc/{self.perf.pid}/task/{self.perf.pid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            children = []
        for child in children:
            os.kill(child, signal.SIGTERM)
        try:
            self.perf.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.perf.kill()
            self.perf.wait()


class ThreadCounter(PerfSession):
    """`perf stat` over the whole machine, per thread, while one run lasts; `stop` sums the proxy's threads.

    Per thread rather than `-p PID`: `-p` counts only the threads that exist when it attaches, and Dispatch
    starts workers as it needs them. System calls and context switches per request show how a proxy talks to
    the kernel (how many reads and writes, how often it sleeps) independently of the machine's speed.
    """

    EVENTS = {"raw_syscalls:sys_enter": "syscalls", "context-switches": "switches", "cpu-migrations": "migrations",
              "sched:sched_waking": "wakes", "ipi:ipi_send_cpu": "IPIs"}

    def __init__(self):
        self.out = tempfile.NamedTemporaryFile(prefix="myorg-ab-perf.", suffix=".csv", delete=False).name
        super().__init__(["perf", "stat", "-a", "--per-thread", "-x,", "-e", ",".join(self.EVENTS), "-o", self.out])

    def close(self):
        """Ends perf (also when the run failed before `stop`) and removes its output."""
        self.end()
        if os.path.exists(self.out):
            os.unlink(self.out)

    def stop(self, pid):
        tids = set(os.listdir(f"/proc/{pid}/task")) if os.path.isdir(f"/proc/{pid}/task") else set()
        self.end()
        sums = {}
        with open(self.out) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) < 4 or not fields[1].isdigit():
                    continue
                thread, event = fields[0], fields[3]
                if thread.rpartition("-")[2] in tids and event in self.EVENTS:
                    sums[self.EVENTS[event]] = sums.get(self.EVENTS[event], 0) + int(fields[1])
        return sums


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", required=True, metavar="NAME=BINARY[:NAME=VALUE,...]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", default="fresh,pass,h2pass")
    p.add_argument("--duration", type=int, default=4, help="seconds per measured run (default 4)")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--loops", type=int, default=2, help="gateway loops, HAProxy threads, nginx workers")
    p.add_argument("--fresh-tokens", type=int, default=20000)
    p.add_argument("--gateway-log", action="store_true",
                   help="every gateway variant writes its log events to a file, as a production gateway would")
    p.add_argument("--counts", action="store_true",
                   help="also count the proxy's system calls, context switches and CPU migrations per request "
                        "(perf stat; needs perf and root)")
    p.add_argument("--profile", metavar="DIR",
                   help="also sample the whole machine during every measured run (perf record -a) into "
                        "DIR/ROUND-MODE-NAME.data, the proxy's PID in the file's name; read one proxy with "
                        "perf report -i FILE --pid PID")
    a = p.parse_args()
    modes = a.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        sys.exit(f"ab.py: unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    variants = [parse_variant(v) for v in a.variant]
    b = Bench(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {}
    try:
        b.setup(variants)
        for round_index in range(a.rounds):
            # New every round: each proxy sees each token once per round, and tokens live 600 s.
            for mode in ("fresh", "h2fresh"):
                if mode in modes:
                    b.sh(f"{sys.executable} {HERE}/bench.py mint --key sign.pem --template tokens.txt "
                         f"--orgs orgs.txt --count {a.fresh_tokens} --out {mode}.txt")
            for mode in modes:
                for target in b.targets:
                    r = b.measure(mode, target, round_index)
                    if r is None:
                        continue
                    results.setdefault((mode, target[0]), []).append((round_index, r))
                    unit = "µs mean" if mode == "hog" else "req/s"
                    print(f"round {round_index + 1} {mode:<6} {target[0]:<12} {r['figure']:9.0f} {unit:<7}  "
                          f"proxy CPU {r['cpu']:6.1f} µs/req  idle {bench._fmt(r['idle'], '4.1f')}%  "
                          f"client CPU {r['client']:5.1f} µs/req{format_counts(r['counts'])}", flush=True)
    finally:
        b.stop()
    print("\nmedians; ratio: the median over rounds of variant ÷ HAProxy in the same round "
          "(hog: latency, lower is better)")
    for mode in modes:
        anchor = dict(results.get((mode, "haproxy"), []))
        for target in b.targets:
            runs = results.get((mode, target[0]), [])
            if not runs:
                continue
            figures = [r["figure"] for _, r in runs]
            ratios = [r["figure"] / anchor[i]["figure"] for i, r in runs if i in anchor and anchor[i]["figure"]]
            idles = [r["idle"] for _, r in runs if r["idle"] is not None]
            counts = {event: statistics.median(r["counts"][event] for _, r in runs if event in r["counts"])
                      for event in ThreadCounter.EVENTS.values() if any(event in r["counts"] for _, r in runs)}
            print(f"{mode:<6} {target[0]:<12} {statistics.median(figures):9.0f}  "
                  f"ratio {statistics.median(ratios) if ratios else float('nan'):5.2f}  "
                  f"proxy CPU {statistics.median(r['cpu'] for _, r in runs):6.1f}  "
                  f"idle {statistics.median(idles) if idles else float('nan'):4.1f}%{format_counts(counts)}")
    print(f"logs: {b.dir}")


if __name__ == "__main__":
    main()
