"""Request counters and latency histograms in the Prometheus text exposition format (0.0.4).

Kept to what the service needs, so no client library: counters and cumulative histograms,
written as ``# HELP`` / ``# TYPE`` blocks with ``_bucket{le=...}``, ``_sum`` and ``_count``.
"""

from __future__ import annotations

import bisect
import time

#: Upper bounds (seconds) of the latency buckets: fine below 10 ms, where the targets are.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """Counts of observations per bucket, their sum and count."""

    def __init__(self, buckets=BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets + (float("inf"),), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        brace = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{brace} {self.total!r}", f"{name}_count{brace} {self.n}"]
        return out


class Metrics:
    """What ``GET /metrics`` reports."""

    def __init__(self):
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.foldin = Histogram()
        self.events = 0
        self.started = time.time()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency.setdefault(route, Histogram()).observe(seconds)

    def render(self, extra: dict | None = None) -> str:
        lines = ["# HELP reclib_requests_total HTTP requests by method, route and status.",
                 "# TYPE reclib_requests_total counter"]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'reclib_requests_total{{method="{method}",route="{route}",'
                         f'status="{status}"}} {n}')
        lines += ["# HELP reclib_request_seconds Time from request to response, by route.",
                  "# TYPE reclib_request_seconds histogram"]
        for route, hist in sorted(self.latency.items()):
            lines += hist.lines("reclib_request_seconds", f'route="{route}"')
        lines += ["# HELP reclib_events_total Events acknowledged (durable in the log).",
                  "# TYPE reclib_events_total counter", f"reclib_events_total {self.events}",
                  "# HELP reclib_foldin_seconds Time to re-solve the users of one event batch.",
                  "# TYPE reclib_foldin_seconds histogram"]
        lines += self.foldin.lines("reclib_foldin_seconds", "")
        for name, (help_text, value) in (extra or {}).items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"
