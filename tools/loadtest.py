"""A bounded loopback load test of `strata serve`, standard library only.

    python3 tools/loadtest.py --url http://127.0.0.1:PORT --clients 8 --seconds 20 \\
        --max-requests 20000 --questions QUESTIONS_JSONL [--mode hybrid] [--pid SERVER_PID] [--json]

Each of --clients threads holds one persistent HTTP/1.1 connection (http.client) and loops
POSTing {"query": q, "k": 10, "mode": MODE} to /search, questions drawn round-robin from the
file, until --seconds pass or --max-requests have been sent (all clients together). It counts
status codes, exceptions (dropped requests; the client reconnects after one) and latency
(p50/p99, nearest rank, over the answered requests). With --pid it samples the server's VmRSS
from /proc/PID/status every 0.5 s and reports the first, largest and last sample in MB.

Then it checks bad input; each must get the expected status and a JSON body with an "error"
key: malformed JSON 400, empty query 400, k = 0 400, k = 101 400, unknown mode 400, unknown
subtree 404, a body over 16 KiB 413; and GET /health must answer 200 {"status": "ok", ...}.

Exit status 1 when any load request was not a 200 or was dropped, when none was answered, or
when any check failed. Only 127.0.0.1 and localhost are accepted as hosts.
"""
import argparse
import http.client
import json
import math
import sys
import threading
import time
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost"}


def nearest_rank(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Budget:
    """Hands out request numbers until the request budget or the deadline runs out."""

    def __init__(self, max_requests, deadline):
        self.lock = threading.Lock()
        self.next = 0
        self.max = max_requests
        self.deadline = deadline

    def take(self):
        with self.lock:
            if self.next >= self.max or time.monotonic() >= self.deadline:
                return None
            i = self.next
            self.next += 1
            return i


def client(host, port, questions, mode, k, budget, timeout, out):
    statuses, latencies, errors = {}, [], []
    conn = None
    while True:
        i = budget.take()
        if i is None:
            break
        body = json.dumps({"query": questions[i % len(questions)], "k": k, "mode": mode}).encode()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            t0 = time.perf_counter()
            conn.request("POST", "/search", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            latencies.append((time.perf_counter() - t0) * 1000.0)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status == 200:
                reply = json.loads(data)
                if not isinstance(reply.get("hits"), list):
                    raise ValueError(f"200 without a hits list: {data[:200]!r}")
            elif len(errors) < 5:
                errors.append(f"HTTP {resp.status}: {data[:200]!r}")
            if resp.will_close:
                conn.close()
                conn = None
        except Exception as e:  # a dropped request: count it, reconnect
            out.setdefault("dropped", []).append(f"{type(e).__name__}: {e}")
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    out["statuses"], out["latencies"], out["errors"] = statuses, latencies, errors


def exchange(host, port, method, path, body=None, timeout=30.0):
    """One request on a fresh connection: (status, parsed JSON or None, raw bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            conn.request(method, path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (413) and close before reading the whole body
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return resp.status, parsed, raw
    finally:
        conn.close()


def checks(host, port, mode):
    q = "What are the symptoms of diabetes ?"
    cases = [
        ("malformed JSON", "POST", "/search", b'{"query": "diabetes", "k": ', 400),
        ("empty query", "POST", "/search", {"query": "", "k": 10, "mode": mode}, 400),
        ("k = 0", "POST", "/search", {"query": q, "k": 0, "mode": mode}, 400),
        ("k = 101", "POST", "/search", {"query": q, "k": 101, "mode": mode}, 400),
        ("unknown mode", "POST", "/search", {"query": q, "k": 10, "mode": "telepathy"}, 400),
        ("unknown subtree", "POST", "/search", {"query": q, "k": 10, "mode": mode, "under": "/No such topic"}, 404),
        ("body over 16 KiB", "POST", "/search", {"query": "diabetes " * 2000, "k": 10, "mode": mode}, 413),
        ("GET /health", "GET", "/health", None, 200),
    ]
    results = []
    for name, method, path, body, want in cases:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        try:
            status, parsed, raw = exchange(host, port, method, path, body)
            if path == "/health":
                ok = status == want and isinstance(parsed, dict) and parsed.get("status") == "ok"
            else:
                ok = status == want and isinstance(parsed, dict) and "error" in parsed
            detail = f"{status} {raw[:160].decode('utf-8', 'replace')}"
        except Exception as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        size = f" ({len(body)} B)" if body is not None and name.startswith("body") else ""
        results.append({"check": name + size, "want": want, "ok": ok, "got": detail})
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="http://127.0.0.1:PORT (loopback only)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-requests", type=int, default=20000)
    ap.add_argument("--questions", required=True, help="JSONL with a \"question\" per line")
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--pid", type=int, help="the server's pid, to sample its RSS")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, s")
    ap.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    args = ap.parse_args()

    u = urlsplit(args.url)
    if u.scheme != "http" or u.hostname not in LOOPBACK or u.port is None:
        sys.exit(f"refusing {args.url!r}: only http://127.0.0.1:PORT or http://localhost:PORT")
    host, port = u.hostname, u.port
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1:
        sys.exit("--clients, --seconds and --max-requests must be positive")

    questions = []
    with open(args.questions, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                questions.append(json.loads(line)["question"])
    if not questions:
        sys.exit(f"no questions in {args.questions}")

    samples, stop = [], threading.Event()
    if args.pid:
        if rss_kb(args.pid) is None:
            sys.exit(f"no VmRSS in /proc/{args.pid}/status")

        def sampler():
            while True:
                v = rss_kb(args.pid)
                if v is not None:
                    samples.append(v)
                if stop.wait(0.5):
                    break
        rss_thread = threading.Thread(target=sampler, daemon=True)
        rss_thread.start()

    budget = Budget(args.max_requests, time.monotonic() + args.seconds)
    outs = [{} for _ in range(args.clients)]
    threads = [threading.Thread(target=client, args=(host, port, questions, args.mode, args.k, budget, args.timeout, o))
               for o in outs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if args.pid:
        stop.set()
        rss_thread.join()
        v = rss_kb(args.pid)
        if v is not None:
            samples.append(v)

    statuses, lat, errors, dropped = {}, [], [], []
    for o in outs:
        for s, c in o.get("statuses", {}).items():
            statuses[s] = statuses.get(s, 0) + c
        lat += o.get("latencies", [])
        errors += o.get("errors", [])
        dropped += o.get("dropped", [])
    lat.sort()
    answered = sum(statuses.values())
    non200 = answered - statuses.get(200, 0)
    check_results = checks(host, port, args.mode)

    mb = lambda kb: round(kb / 1024.0, 1)
    summary = {
        "url": args.url, "mode": args.mode, "k": args.k, "clients": args.clients,
        "seconds_limit": args.seconds, "max_requests": args.max_requests,
        "requests": answered + len(dropped), "answered": answered, "elapsed_s": round(elapsed, 3),
        "req_per_s": round(answered / elapsed, 1) if elapsed > 0 else None,
        "p50_ms": round(nearest_rank(lat, 50), 3), "p99_ms": round(nearest_rank(lat, 99), 3),
        "max_ms": round(lat[-1], 3) if lat else None,
        "statuses": {str(s): c for s, c in sorted(statuses.items())},
        "non_200": non200, "dropped": len(dropped),
        "rss_mb": ({"first": mb(samples[0]), "max": mb(max(samples)), "last": mb(samples[-1]), "samples": len(samples)}
                   if samples else None),
        "checks": check_results,
        "first_errors": (errors + dropped)[:5],
    }
    print(f"load: {summary['requests']} requests ({answered} answered) in {elapsed:.2f} s by {args.clients} clients, "
          f"mode {args.mode}, k {args.k}: {summary['req_per_s']} req/s, p50 {summary['p50_ms']} ms, "
          f"p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms")
    print(f"statuses {summary['statuses']}, non-200 {non200}, dropped {len(dropped)}")
    if samples:
        r = summary["rss_mb"]
        print(f"server RSS (pid {args.pid}, {r['samples']} samples): first {r['first']} MB, max {r['max']} MB, last {r['last']} MB")
    for e in summary["first_errors"]:
        print(f"  error: {e}")
    for c in check_results:
        print(f"check {c['check']:<28} want {c['want']}: {'ok' if c['ok'] else 'FAIL'}  ({c['got']})")
    if args.json:
        print(json.dumps(summary, indent=2))
    failed = non200 or dropped or answered == 0 or not all(c["ok"] for c in check_results)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
