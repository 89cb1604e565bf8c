"""A bounded load generator for the service: asyncio, keep-alive HTTP/1.1, loopback only.

Each of ``connections`` clients sends one request, waits for the whole response, records its
latency and sends the next (a closed loop, so the rate is what the server sustains). The run
stops by itself at ``duration`` seconds or ``max_requests`` requests, whichever comes first.

Workloads:

* ``"recommend"``: ``POST /recommend`` for a uniformly drawn known user, ``k = 10``;
* ``"mixed"``: 80% of those and 20% ``POST /events`` of one (user, item) event each, drawn
  the same way, so one in five requests waits for a durable commit and a fold-in.

``python -m reclib.serving.loadtest --port 8000 --model PATH --workload mixed`` prints a JSON
summary: requests, errors, throughput, p50/p95/p99/max latency.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time

import numpy as np

from .._validation import check_float, check_int


def _check_loopback(host: str) -> str:
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"host == {host!r}: the load generator only targets loopback addresses")


def request_maker(workload: str, user_ids, item_ids, k: int = 10, event_share: float = 0.2,
                  seed: int = 0):
    """A function ``() -> (path, body_bytes)`` drawing the workload's next request."""
    if workload not in ("recommend", "mixed"):
        raise ValueError(f"workload == {workload!r}, must be 'recommend' or 'mixed'")
    rng = np.random.default_rng(seed)
    users, items = [_plain(u) for u in user_ids], [_plain(i) for i in item_ids]
    share = event_share if workload == "mixed" else 0.0

    def make():
        user = users[rng.integers(len(users))]
        if share and rng.random() < share:
            event = {"user_id": user, "item_id": items[rng.integers(len(items))]}
            return "/events", json.dumps({"events": [event]}).encode()
        return "/recommend", json.dumps({"user_id": user, "k": k}).encode()

    return make


def _plain(value):
    return value.item() if hasattr(value, "item") else value


async def _client(host, port, make, deadline, budget, latencies, statuses, routes):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            path, body = make()
            head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            start = time.perf_counter()
            writer.write(head.encode() + body)
            header = await reader.readuntil(b"\r\n\r\n")
            status = int(header.split(b" ", 2)[1])
            length = 0
            for line in header.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses.append(status)
            routes.append(path)
    finally:
        writer.close()


async def run_load(host: str, port: int, make, duration: float = 10.0,
                   max_requests: int = 100_000, connections: int = 8) -> dict:
    """Drive the server with ``connections`` closed-loop clients; returns the summary dict."""
    host = _check_loopback(host)
    duration = check_float("duration", duration, strictly_positive=True, maximum=600.0)
    max_requests = check_int("max_requests", max_requests, minimum=1, maximum=10_000_000)
    connections = check_int("connections", connections, minimum=1, maximum=256)
    latencies, statuses, routes = [], [], []
    budget = [max_requests]
    start = time.perf_counter()
    deadline = start + duration
    results = await asyncio.gather(*(_client(host, port, make, deadline, budget, latencies,
                                             statuses, routes) for _ in range(connections)),
                                   return_exceptions=True)
    elapsed = time.perf_counter() - start
    failures = [repr(r) for r in results if isinstance(r, Exception)]
    return summarise(latencies, statuses, routes, elapsed, connections, failures)


def summarise(latencies, statuses, routes, elapsed, connections, failures=()) -> dict:
    lat = np.asarray(latencies) * 1e3
    statuses = np.asarray(statuses)
    out = {"requests": int(len(lat)), "errors": int((statuses >= 400).sum()) + len(failures),
           "connection_failures": list(failures), "seconds": elapsed,
           "throughput_rps": len(lat) / elapsed if elapsed else 0.0,
           "connections": connections, "latencies_ms": lat.tolist(),
           "routes": list(routes)}
    for q in (50, 95, 99):
        out[f"p{q}_ms"] = float(np.percentile(lat, q)) if len(lat) else float("nan")
    out["max_ms"] = float(lat.max()) if len(lat) else float("nan")
    for route in sorted(set(routes)):
        sel = np.asarray(routes) == route
        out[f"p99_ms{route.replace('/', '_')}"] = float(np.percentile(lat[sel], 99))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reclib.serving.loadtest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", required=True, help="the served model or store (for its ids)")
    parser.add_argument("--workload", default="recommend", choices=["recommend", "mixed"])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .store import load_any
    store = load_any(args.model)
    make = request_maker(args.workload, store.user_ids, store.item_ids, seed=args.seed)
    summary = asyncio.run(run_load(args.host, args.port, make, args.duration,
                                   args.max_requests, args.connections))
    summary.pop("latencies_ms")
    summary.pop("routes")
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
