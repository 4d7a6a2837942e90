#!/usr/bin/env python3
"""Helpers for run.sh: free ports, template rendering, development tokens and their JWKS, one measured
load run (warm-up, CPU snapshots of the proxy's processes, parsing), and the final table (with several rounds
per row: the median of each figure and the spread of req/s).

Standard library only, except `mint` (fresh tokens), which needs the `cryptography` package.
Nothing here prints a token or key material: tokens go to files under the run's private temp directory.
"""

import argparse
import base64
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- ports and templates


def free_ports(count):
    """`count` distinct free ports on 127.0.0.1."""
    # Bind them all before closing any, so the kernel cannot hand out the same port twice.
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cmd_ports(args):
    print(" ".join(str(p) for p in free_ports(args.count)))


def cmd_render(args):
    with open(args.template) as f:
        text = f.read()
    for pair in args.values:
        key, _, value = pair.partition("=")
        text = text.replace("@" + key + "@", value)
    left = sorted(set(re.findall(r"@[A-Z][A-Z0-9_]*@", text)))
    if left:
        sys.exit(f"bench.py render: {args.template}: no value for {', '.join(left)}")
    with open(args.out, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- CPU accounting


def _stat(pid):
    """(ppid, utime + stime in ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


class IdleSampler:
    """The whole machine's idle share over part of a run, from /proc/stat sampled every 50 ms.

    The load generator, the origin and the proxy share the cores, so a proxy can lose throughput with a lower CPU
    cost per request when the machine sits idle between hand-offs: this figure shows that directly. A fresh-token
    run is busy only until its tokens run out, so the share is taken over a window the caller names afterwards."""

    def __init__(self):
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), *self._read()))
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def idle_pct(self, start, end):
        """Idle percent between two monotonic times, or None when fewer than two samples fall inside."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][2] == inside[0][2]:
            return None
        return (inside[-1][1] - inside[0][1]) * 100.0 / (inside[-1][2] - inside[0][2])


def tree_ticks(roots):
    """utime + stime (ticks) of the processes `roots` and all their descendants.

    A process's stat already sums its threads, so worker threads (HAProxy, nghttpx, the gateway's loops) are
    counted; worker processes (nginx, nghttpx) are found as descendants."""
    children = {}
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is None:
            continue
        children.setdefault(st[0], []).append(int(entry))
        ticks[int(entry)] = st[1]
    total, seen, todo = 0, set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def cmd_ticks(args):
    print(tree_ticks([int(p) for p in args.pids]))


# ---------------------------------------------------------------- tokens and JWKS


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _load_key(path):
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        sys.exit("bench.py: this step needs the Python package `cryptography` (pip install cryptography)")
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def cmd_jwks(args):
    key = _load_key(args.key)
    numbers = key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "n": b64url(n), "e": b64url(e)}
    if args.kid:
        jwk["kid"] = args.kid
    print(json.dumps({"keys": [jwk]}))


def cmd_token_header(args):
    """Prints one field of a token's JOSE header (e.g. kid), read from a file so no token is on a command line."""
    with open(args.file) as f:
        token = f.readline().strip()
    header = json.loads(b64url_decode(token.split(".")[0]))
    print(header.get(args.field, ""))


def _mint_chunk(job):
    key_path, header_b64, claims, orgs, start, count = job
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key = _load_key(key_path)
    lifetime = claims["exp"] - claims["iat"] if "exp" in claims and "iat" in claims else 600
    out = []
    for i in range(start, start + count):
        c = dict(claims)
        now = int(time.time())
        c["iat"] = now
        c["exp"] = now + lifetime
        c["org_id"] = orgs[i % len(orgs)]
        # A unique jti makes every token distinct, so the gateway's verified-token cache can never hit.
        c["jti"] = secrets.token_hex(12)
        signing_input = header_b64 + "." + b64url(json.dumps(c, separators=(",", ":")).encode())
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        out.append(signing_input + "." + b64url(sig))
    return out


def cmd_mint(args):
    """Mints `count` distinct tokens shaped exactly like a template token from `myorg-gateway token`, or, without
    a template, with the claims of `--claims` and the key id `--kid`."""
    if args.template:
        with open(args.template) as f:
            template = f.readline().strip()
        header_b64, payload_b64, _ = template.split(".")
        claims = json.loads(b64url_decode(payload_b64))
    else:
        claims = json.loads(args.claims)
        now = int(time.time())
        claims.setdefault("iat", now)
        claims.setdefault("exp", now + 600)
        header = {"alg": "RS256", "typ": "JWT", "kid": args.kid}
        header_b64 = b64url(json.dumps(header, separators=(",", ":")).encode())
    with open(args.orgs) as f:
        orgs = [line.strip() for line in f if line.strip()]
    _load_key(args.key)  # fail early with a clear message when cryptography is missing
    procs = max(1, args.procs)
    per = (args.count + procs - 1) // procs
    jobs = [
        (args.key, header_b64, claims, orgs, i * per, min(per, args.count - i * per))
        for i in range(procs)
        if args.count - i * per > 0
    ]
    chunks = _mint_parallel(jobs, procs) if procs > 1 else [_mint_chunk(j) for j in jobs]
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for chunk in chunks:
            for token in chunk:
                f.write(token + "\n")


def _mint_parallel(jobs, procs):
    """The chunks of `jobs` minted by `procs` worker processes, in order. A multiprocessing.Pool waits forever
    when one of its workers dies (a benchmark run once hung here for 15 minutes); a process pool executor reports
    the dead worker instead, and whatever did not come back is minted again in this process, so the run goes on
    with every token and ends in bounded time."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # Generous: a chunk of 10,000 tokens takes about 4 s on this machine's cores.
    budget = 60 + sum(j[5] for j in jobs) * 0.01
    chunks = [None] * len(jobs)
    pool = ProcessPoolExecutor(max_workers=procs)
    try:
        futures = [pool.submit(_mint_chunk, j) for j in jobs]
        deadline = time.monotonic() + budget
        for i, future in enumerate(futures):
            try:
                chunks[i] = future.result(timeout=max(1.0, deadline - time.monotonic()))
            except (BrokenProcessPool, TimeoutError, OSError) as error:
                print(f"bench.py mint: a worker failed ({type(error).__name__}); minting its share here",
                      file=sys.stderr)
                break
    finally:
        # Never waits for a stuck worker: those still alive are killed.
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
    return [chunk if chunk is not None else _mint_chunk(job) for chunk, job in zip(chunks, jobs)]


# ---------------------------------------------------------------- one measured run


def _to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(text):
    r = {}
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if m:
        r["p99_ms"] = _to_ms(*m.groups())
    m = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if m:
        r["p50_ms"] = _to_ms(*m.groups())
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_s"] = _to_ms(m.group(2), m.group(3)) / 1000.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"^statuses: (.*)$", text, re.M)
    if m:
        r["statuses"] = {k: int(v) for k, v in (p.split("=") for p in m.group(1).split())}
    m = re.search(r"^active: ([\d.]+)$", text, re.M)
    if m:
        r["active_s"] = float(m.group(1))
    return r


def parse_h2load(texts, logs):
    r = {"rps": 0.0, "requests": 0, "failed": 0, "errored": 0, "duration_s": 0.0}
    for text in texts:
        m = re.search(r"finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req/s", text)
        if m:
            r["rps"] += float(m.group(3))
            r["duration_s"] = max(r["duration_s"], _to_ms(m.group(1), m.group(2)) / 1000.0)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
        if m:
            r["requests"] += int(m.group(3))
            r["failed"] += int(m.group(5))
            r["errored"] += int(m.group(6))
    latencies, statuses = [], {}
    for path in logs:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split("\t")
                    if len(parts) < 3:
                        continue
                    statuses[parts[1]] = statuses.get(parts[1], 0) + 1
                    latencies.append(int(parts[2]))
        except OSError:
            pass
    if latencies:
        latencies.sort()
        r["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000.0
        r["p50_ms"] = latencies[len(latencies) // 2] / 1000.0
    r["statuses"] = statuses
    r["non2xx"] = sum(v for k, v in statuses.items() if not k.startswith("2"))
    return r


def _read_tokens(path, count):
    with open(path) as f:
        tokens = [line.strip() for line in f if line.strip()]
    return tokens[:count] if count else tokens


def _h2load_cmds(a, duration, log_base):
    base = ["h2load", "-t", "1", "-m", str(a.streams), "-D", str(duration)]
    headers = []
    if a.host:
        headers += ["-H", f":authority: {a.host}"]
    if a.origin_header:
        headers += ["-H", f"origin: {a.origin_header}"]
    if a.mode == "plain":
        cmd = base + ["-c", str(a.conns)] + headers
        if log_base:
            cmd += ["--log-file", log_base + ".log"]
        return [cmd + [a.url]]
    # One h2load process per token: h2load sends the same headers on every request of a process.
    tokens = _read_tokens(a.tokens, a.h2load_procs)
    cmds = []
    per = max(1, a.conns // len(tokens))
    for i, token in enumerate(tokens):
        cmd = base + ["-c", str(per)] + headers + ["-H", f"authorization: Bearer {token}"]
        if log_base:
            cmd += ["--log-file", f"{log_base}.{i}.log"]
        cmds.append(cmd + [a.url])
    return cmds


def _wrk_cmd(a, duration):
    cmd = ["wrk", "-t", str(a.threads), "-c", str(a.conns), "-d", f"{duration}s", "--latency"]
    if a.mode == "plain":
        if a.host:
            cmd += ["-H", f"Host: {a.host}"]
        if a.origin_header:
            cmd += ["-H", f"Origin: {a.origin_header}"]
        return cmd + [a.url]
    mode = "fresh" if a.mode == "fresh" else "rotate"
    tokens = a.fresh_tokens if mode == "fresh" else a.tokens
    return cmd + [
        "-s", a.lua, a.url, "--", tokens, mode, a.origin_header or "-", a.host or "127.0.0.1", str(a.threads)
    ]


def _h2fresh_cmd(a, duration):
    # h2fresh.c: every request over HTTP/2 with the next fresh token; it stops when they run out, and the
    # duration given here only bounds the wait, as for wrk's fresh runs.
    url = urllib.parse.urlsplit(a.url)
    return [a.h2fresh, url.hostname, str(url.port), a.host or url.hostname, url.path or "/", a.fresh_tokens,
            str(a.conns), str(a.streams), str(duration + 30), a.origin_header or "-"]


def _redact(cmd):
    # Tokens travel on h2load's command line (no other way); the saved command shows none of them.
    return " ".join("authorization: Bearer <token>" if c.startswith("authorization: Bearer ") else c for c in cmd)


# Load generators running now, stopped by PID if this process is told to stop.
RUNNING = []


def _stop_running(signum, frame):
    for p in RUNNING:
        try:
            p.kill()
        except OSError:
            pass
    sys.exit(128 + signum)


def _run_parallel(cmds, timeout):
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
    RUNNING[:] = procs
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            out += "\n[bench.py: killed after timeout]\n"
        outs.append(out)
    RUNNING.clear()
    return outs


def cmd_measure(a):
    # With --round (several rounds), each round's raw outputs have their own directory and every result says
    # its round; without it, everything is as it was for a single run.
    raw_dir = os.path.join(a.dir, "raw") if a.round is None else os.path.join(a.dir, "raw", f"round{a.round}")
    raw = os.path.join(raw_dir, a.id)
    os.makedirs(raw_dir, exist_ok=True)
    tag = {} if a.round is None else {"round": a.round}
    proxy_pids = [int(p) for p in a.pids.split(",") if p]
    origin_pids = [int(p) for p in (a.origin_pids or "").split(",") if p]
    limit = a.duration + 30

    def alive():
        try:
            os.kill(proxy_pids[0], 0)
            return True
        except OSError:
            return False

    if not alive():
        print(f"  {a.scenario:<22} {a.tool:<6} {a.mode:<6} skipped: the proxy (PID {proxy_pids[0]}) is not running")
        with open(os.path.join(a.dir, "results.jsonl"), "a") as f:
            f.write(json.dumps(dict(id=a.id, scenario=a.scenario, tool=a.tool, mode=a.mode, note="proxy not running",
                                    **tag)) + "\n")
        return

    if a.warmup > 0:
        warm_mode = a.mode
        if a.mode == "fresh":
            # Warm with the reused tokens: the fresh ones must reach the proxy for the first time when measured.
            a.mode = "rotate"
        if a.tool == "h2fresh":
            # h2load sends one set of headers: the warm-up reuses one token over HTTP/2.
            a.tool, a.mode = "h2load", "reused"
            _run_parallel(_h2load_cmds(a, a.warmup, None), a.warmup + 30)
            a.tool = "h2fresh"
        elif a.tool == "h2load":
            _run_parallel(_h2load_cmds(a, a.warmup, None), a.warmup + 30)
        else:
            _run_parallel([_wrk_cmd(a, a.warmup)], a.warmup + 30)
        a.mode = warm_mode

    if a.tool == "h2load":
        cmds = _h2load_cmds(a, a.duration, raw)
    elif a.tool == "h2fresh":
        cmds = [_h2fresh_cmd(a, a.duration)]
    else:
        cmds = [_wrk_cmd(a, a.duration)]
    t0 = time.monotonic()
    cpu0, org0 = tree_ticks(proxy_pids), tree_ticks(origin_pids)
    with IdleSampler() as idle:
        outs = _run_parallel(cmds, limit)
    cpu1, org1 = tree_ticks(proxy_pids), tree_ticks(origin_pids)
    wall = time.monotonic() - t0

    with open(raw + ".out", "w") as f:
        for c, out in zip(cmds, outs):
            f.write("$ " + _redact(c) + "\n" + out + "\n")
    if a.tool == "h2load":
        logs = [c[c.index("--log-file") + 1] for c in cmds]
        r = parse_h2load(outs, logs)
        if not a.keep_logs:
            for path in logs:
                try:
                    os.remove(path)
                except OSError:
                    pass
    else:
        r = parse_wrk(outs[0])
        if a.mode == "fresh" and r.get("active_s") and r.get("statuses"):
            # The thread stopped when the tokens ran out: the rate is over the time it was busy.
            r["rps"] = sum(r["statuses"].values()) / r["active_s"]
            r["duration_s"] = r["active_s"]
    # The first and last tenth of a second hold the tools' start and stop, not the load.
    busy = r["active_s"] if a.mode == "fresh" and r.get("active_s") else wall
    r["machine_idle_pct"] = idle.idle_pct(t0 + 0.1, t0 + busy - 0.1)
    if not alive():
        r["note"] = "the proxy exited during the run"
        print(f"  {a.scenario:<22} {a.tool:<6} {a.mode:<6} the proxy (PID {proxy_pids[0]}) exited during the run")
    r.setdefault("note", a.note or "")
    r.update(
        id=a.id, scenario=a.scenario, tool=a.tool, mode=a.mode,
        proxy_cpu_s=(cpu1 - cpu0) / CLK_TCK, origin_cpu_s=(org1 - org0) / CLK_TCK, wall_s=wall, **tag,
    )
    n = r.get("requests", 0)
    if n > 0:
        r["proxy_cpu_us_per_req"] = r["proxy_cpu_s"] * 1e6 / n
        if origin_pids:
            r["origin_cpu_us_per_req"] = r["origin_cpu_s"] * 1e6 / n
    with open(os.path.join(a.dir, "results.jsonl"), "a") as f:
        f.write(json.dumps(r) + "\n")
    status = " ".join(f"{k}:{v}" for k, v in sorted((r.get("statuses") or {}).items()))
    print(
        f"  {a.scenario:<22} {a.tool:<6} {a.mode:<6} {r.get('rps', 0):>10.0f} req/s  "
        f"p99 {r.get('p99_ms', float('nan')):7.2f} ms  cpu {r.get('proxy_cpu_us_per_req', float('nan')):7.1f} us/req"
        f"  idle {_fmt(r.get('machine_idle_pct'), '4.1f')}%"
        + (f"  [{status}]" if status and set(r["statuses"]) != {"200"} else "")
    )


# ---------------------------------------------------------------- the table


LABELS = {
    "bare": "bare upstream (nginx TLS)",
    "nghttpx": "nghttpx TLS proxy",
    "haproxy": "HAProxy TLS proxy",
    "gateway": "gateway pass-through",
    "gateway-log": "gateway pass-through +file log",
    "haproxy-jwt": "HAProxy jwt_verify",
    "gateway-policy": "gateway full policy",
    "gateway-policy-log": "gateway full policy +file log",
}


def _fmt(v, spec):
    if isinstance(v, (int, float)):
        return format(v, spec)
    width = re.match(r"\d*", spec).group(0)
    return format("-", ">" + width) if width else "-"


def _ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return "-"
    return f"{a / b:.2f}"


# With several rounds, the figures a row reports are the medians across its usable rounds: one slow or fast
# round (another process, the CPU clock) moves a median much less than a mean.
MEDIAN_KEYS = ("rps", "p99_ms", "proxy_cpu_us_per_req", "origin_cpu_us_per_req", "machine_idle_pct", "requests",
               "duration_s")
# Problem counts are the largest of any round instead, so that one bad round is not hidden by the median.
WORST_KEYS = ("non2xx", "socket_errors")


def _usable(r):
    # A run whose proxy crashed or never ran is shown in the table but kept out of the figures and the ratios.
    return not r.get("note") and bool(r.get("rps"))


def _combine(runs):
    """One table row from the runs (one per round) of one scenario, tool and mode.

    A single run is shown as it is. Several runs give the median of each figure over the usable ones, the
    min..max of their req/s and `spread_pct`, the farthest round's req/s from the median in percent of it."""
    if len(runs) == 1:
        return dict(runs[0], usable=_usable(runs[0]), rounds=1)
    good = [r for r in runs if _usable(r)]
    left_out = [r.get("note") or "no requests completed" for r in runs if not _usable(r)]
    why = "; ".join(sorted(set(left_out)))
    if not good:
        # Nothing to take a median of: show the last round's figures, as a single run would be shown.
        return dict(runs[-1], usable=False, rounds=len(runs), note=f"all {len(runs)} rounds left out: {why}")
    row = {k: runs[0][k] for k in ("scenario", "tool", "mode")}
    for k in MEDIAN_KEYS:
        values = [r[k] for r in good if isinstance(r.get(k), (int, float))]
        if values:
            row[k] = statistics.median(values)
    for k in WORST_KEYS:
        values = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
        if values:
            row[k] = max(values)
    refused = max((r.get("statuses") or {}).get("429", 0) for r in runs)
    row["statuses"] = {"429": refused} if refused else {}
    rps = [r["rps"] for r in good]
    row.update(usable=True, rounds=len(runs), rps_min=min(rps), rps_max=max(rps),
               spread_pct=max(abs(x - row["rps"]) for x in rps) * 100.0 / row["rps"])
    row["note"] = f"{len(left_out)} of {len(runs)} rounds left out: {why}" if left_out else ""
    return row


def cmd_table(args):
    runs = []
    path = os.path.join(args.dir, "results.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    if args.round is not None:
        runs = [r for r in runs if r.get("round", 1) == args.round]
    # The runs of one scenario, tool and mode (one per round), in the order the rows were first measured.
    groups = {}
    for r in runs:
        groups.setdefault((r["scenario"], r["tool"], r["mode"]), []).append(r)
    order = list(LABELS)
    rows = sorted((_combine(g) for g in groups.values()),
                  key=lambda r: (order.index(r["scenario"]) if r["scenario"] in order else 99))
    idx = {(r["scenario"], r["tool"], r["mode"]): r for r in rows}
    rounds = max((r["rounds"] for r in rows), default=1)
    lines = []
    if rounds > 1:
        # Two more columns say how noisy each row was; without them, the table is the single-run one.
        lines += [
            f"Median of {rounds} rounds per row (req/s, p99, CPU µs/req; ratios below are of the medians).",
            "±%: the farthest round's req/s from the median; min..max: the rounds' req/s; "
            "non-2xx: the most of any round.",
            "",
        ]
        spread_head, spread_sub = f" {'±%':>5} {'req/s min..max':>15}", f" {'':>5} {'':>15}"
    else:
        spread_head = spread_sub = ""
    head = (f"{'scenario':<32} {'tool':<7} {'tokens':<6} {'req/s':>9}{spread_head} {'p99 ms':>8} {'proxy CPU':>10} "
            f"{'origin CPU':>10} {'idle':>6} {'non-2xx':>8}")
    lines += [head, f"{'':<32} {'':<7} {'':<6} {'':>9}{spread_sub} {'':>8} {'µs/req':>10} {'µs/req':>10} "
              f"{'%':>6} {'':>8}", "-" * len(head)]
    for r in rows:
        mode = "-" if r["mode"] == "plain" else r["mode"]
        extra = ""
        st = r.get("statuses") or {}
        if st.get("429"):
            extra = f"  (429: {st['429']})"
        if r.get("socket_errors"):
            extra += f"  (socket errors: {r['socket_errors']})"
        if r["mode"] == "fresh" and r.get("requests"):
            extra += f"  ({_fmt(r.get('requests', 0), '.0f')} fresh tokens in {_fmt(r.get('duration_s'), '.1f')} s)"
        if r.get("note"):
            extra += f"  [{r['note']}]"
        spread = ""
        if rounds > 1:
            if "spread_pct" in r:
                spread = f" {'±' + format(r['spread_pct'], '.0f') + '%':>5} {format(r['rps_min'], '.0f') + '..' + format(r['rps_max'], '.0f'):>15}"
            else:
                spread = f" {'-':>5} {'-':>15}"
        lines.append(
            f"{LABELS.get(r['scenario'], r['scenario']):<32} {r['tool']:<7} {mode:<6} {_fmt(r.get('rps'), '9.0f')}{spread} "
            f"{_fmt(r.get('p99_ms'), '8.2f')} {_fmt(r.get('proxy_cpu_us_per_req'), '10.1f')} "
            f"{_fmt(r.get('origin_cpu_us_per_req'), '10.1f')} {_fmt(r.get('machine_idle_pct'), '6.1f')} "
            f"{_fmt(r.get('non2xx'), '8.0f')}{extra}"
        )

    def get(s, t, m, k):
        r = idx.get((s, t, m))
        if not r or not r["usable"]:
            return None
        return r.get(k)

    lines += ["", "Ratios (throughput: >1 means the gateway is faster; CPU: >1 means the gateway uses less CPU per request)"]
    lines.append(f"{'':<48} {'h2load':>8} {'wrk':>8}")
    pairs = [
        ("pass-through: gateway ÷ HAProxy req/s", "gateway", "haproxy", "rps", "plain"),
        ("pass-through: gateway ÷ nghttpx req/s", "gateway", "nghttpx", "rps", "plain"),
        ("pass-through: gateway ÷ bare nginx req/s", "gateway", "bare", "rps", "plain"),
        ("pass-through: HAProxy CPU ÷ gateway CPU", "haproxy", "gateway", "proxy_cpu_us_per_req", "plain"),
        ("pass-through: nghttpx CPU ÷ gateway CPU", "nghttpx", "gateway", "proxy_cpu_us_per_req", "plain"),
        ("HAProxy ÷ bare nginx req/s", "haproxy", "bare", "rps", "plain"),
    ]
    for label, a, b, key, mode in pairs:
        lines.append(
            f"{label:<48} {_ratio(get(a, 'h2load', mode, key), get(b, 'h2load', mode, key)):>8} "
            f"{_ratio(get(a, 'wrk', mode, key), get(b, 'wrk', mode, key)):>8}"
        )
    for mode in ("reused", "rotate", "fresh"):
        for label, a, b, key in (
            (f"policy ({mode}): gateway ÷ HAProxy-jwt req/s", "gateway-policy", "haproxy-jwt", "rps"),
            (f"policy ({mode}): HAProxy-jwt CPU ÷ gateway CPU", "haproxy-jwt", "gateway-policy", "proxy_cpu_us_per_req"),
        ):
            # Fresh tokens over HTTP/2 come from h2fresh (h2load cannot vary a header): its column is h2load's.
            h2 = "h2fresh" if mode == "fresh" else "h2load"
            h, w = _ratio(get(a, h2, mode, key), get(b, h2, mode, key)), _ratio(
                get(a, "wrk", mode, key), get(b, "wrk", mode, key)
            )
            if h != "-" or w != "-":
                lines.append(f"{label:<48} {h:>8} {w:>8}")
    log_lines = []
    for s, base, mode in (("gateway-log", "gateway", "plain"), ("gateway-policy-log", "gateway-policy", "reused"),
                          ("gateway-policy-log", "gateway-policy", "rotate"),
                          ("gateway-policy-log", "gateway-policy", "fresh")):
        for tool in ("h2load", "wrk"):
            x = _ratio(get(s, tool, mode, "rps"), get(base, tool, mode, "rps"))
            c = _ratio(get(s, tool, mode, "proxy_cpu_us_per_req"), get(base, tool, mode, "proxy_cpu_us_per_req"))
            if x != "-":
                verdict = "ok (within 10%)" if float(x) >= 0.90 else "OVER 10% slower"
                noise = ""
                on, off = get(s, tool, mode, "spread_pct"), get(base, tool, mode, "spread_pct")
                if on is not None and off is not None:
                    # A difference smaller than the rows' own spread is not one to act on.
                    noise = f";  req/s spread ±{on:.0f}% on, ±{off:.0f}% off"
                log_lines.append(
                    f"  {LABELS[s]} ({tool}, {mode}) ÷ logging off: req/s {x}  {verdict};  CPU µs/req {c}{noise}")
    if log_lines:
        lines += ["", "File logging overhead (issue \"log events\": throughput within 10% of logging off)"] + log_lines
    text = "\n".join(lines)
    print(text)
    # A one-round view of a multi-round run is for reading only: table.txt keeps the run's own table.
    if args.round is None:
        with open(os.path.join(args.dir, "table.txt"), "w") as f:
            f.write(text + "\n")


def main():
    import signal

    signal.signal(signal.SIGTERM, _stop_running)
    signal.signal(signal.SIGINT, _stop_running)
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ports")
    s.add_argument("count", type=int)
    s.set_defaults(fn=cmd_ports)
    s = sub.add_parser("render")
    s.add_argument("template")
    s.add_argument("out")
    s.add_argument("values", nargs="*")
    s.set_defaults(fn=cmd_render)
    s = sub.add_parser("ticks")
    s.add_argument("pids", nargs="+")
    s.set_defaults(fn=cmd_ticks)
    s = sub.add_parser("jwks")
    s.add_argument("--key", required=True)
    s.add_argument("--kid")
    s.set_defaults(fn=cmd_jwks)
    s = sub.add_parser("token-header")
    s.add_argument("file")
    s.add_argument("field")
    s.set_defaults(fn=cmd_token_header)
    s = sub.add_parser("mint")
    s.add_argument("--key", required=True)
    s.add_argument("--template", help="file whose first line is a token to copy the shape of")
    s.add_argument("--claims", help="JSON claims, when there is no template")
    s.add_argument("--kid", help="key id, when there is no template")
    s.add_argument("--orgs", required=True, help="file with one org id a line; tokens cycle through them")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_mint)
    s = sub.add_parser("measure")
    s.add_argument("--dir", required=True)
    s.add_argument("--id", required=True)
    s.add_argument("--scenario", required=True)
    s.add_argument("--tool", choices=["h2load", "wrk", "h2fresh"], required=True)
    s.add_argument("--mode", choices=["plain", "reused", "rotate", "fresh"], default="plain")
    s.add_argument("--url", required=True)
    s.add_argument("--pids", required=True, help="comma-separated PIDs of the proxy (descendants are included)")
    s.add_argument("--origin-pids", default="")
    s.add_argument("--duration", type=int, default=8)
    s.add_argument("--warmup", type=int, default=1)
    s.add_argument("--conns", type=int, default=16)
    s.add_argument("--streams", type=int, default=10)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--host")
    s.add_argument("--origin-header")
    s.add_argument("--tokens", help="reused tokens, one a line")
    s.add_argument("--fresh-tokens", help="fresh tokens, one a line, each sent once")
    s.add_argument("--h2load-procs", type=int, default=4)
    s.add_argument("--lua")
    s.add_argument("--h2fresh", help="the h2fresh binary (built from h2fresh.c), for --tool h2fresh")
    s.add_argument("--note")
    s.add_argument("--keep-logs", action="store_true")
    s.add_argument("--round", type=int, help="the round this run belongs to (run.sh --rounds N with N > 1)")
    s.set_defaults(fn=cmd_measure)
    s = sub.add_parser("table")
    s.add_argument("dir")
    s.add_argument("--round", type=int, help="only this round's results, as a single-round table (not saved)")
    s.set_defaults(fn=cmd_table)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
