"""Prometheus metrics of one engine, named after vLLM's so existing dashboards work (`vllm:` becomes
`tunewise:`). Each engine has its own CollectorRegistry, so several engines (and tests) coexist.

Request metrics carry `model` (the base or merged model), `adapter`, `version` and `variant`.
Cardinality is bounded: past `max_series` distinct label sets, new adapters are counted under
`adapter="other"` (and their version under "other"), so a server with thousands of adapters keeps
a fixed number of series.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LABELS = ("model", "adapter", "version", "variant")
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
               960.0, 1920.0)
LOAD_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class EngineMetrics:
    """Every series the engine exports, and the hooks the batcher and the adapter cache call."""

    def __init__(self, *, max_series: int = 200):
        self.registry = CollectorRegistry()
        self.max_series = max_series
        self._seen: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()
        r = self.registry
        self.running = Gauge("tunewise:num_requests_running", "Requests in the running batch.", ["model"], registry=r)
        self.waiting = Gauge("tunewise:num_requests_waiting", "Requests waiting for admission.", ["model"], registry=r)
        self.ttft = Histogram("tunewise:time_to_first_token_seconds", "Time to first token.", LABELS,
                              buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("tunewise:inter_token_latency_seconds", "Time between two tokens of one choice.",
                             LABELS, buckets=ITL_BUCKETS, registry=r)
        self.e2e = Histogram("tunewise:e2e_request_latency_seconds", "Arrival to last token.", LABELS,
                             buckets=E2E_BUCKETS, registry=r)
        self.prompt_tokens = Counter("tunewise:prompt_tokens", "Prompt tokens processed.", LABELS, registry=r)
        self.generation_tokens = Counter("tunewise:generation_tokens", "Tokens generated.", LABELS, registry=r)
        self.success = Counter("tunewise:request_success", "Requests finished.", (*LABELS, "finished_reason"),
                               registry=r)
        self.failures = Counter("tunewise:request_failure", "Requests that ended in an error.", LABELS, registry=r)
        self.cache_loaded = Gauge("tunewise:adapter_cache_loaded", "Adapters held per tier.", ["model", "tier"],
                                  registry=r)
        self.cache_bytes = Gauge("tunewise:adapter_cache_bytes", "Bytes held per tier.", ["model", "tier"], registry=r)
        self.cache_hits = Counter("tunewise:adapter_cache_hits", "Requests whose adapter was in the model tier.",
                                  ["model"], registry=r)
        self.cache_misses = Counter("tunewise:adapter_cache_misses", "Requests that had to wait for a load.",
                                    ["model"], registry=r)
        self.cache_loads = Counter("tunewise:adapter_loads", "Adapter loads by source tier (disk: cold, host: warm).",
                                   ["model", "source"], registry=r)
        self.cache_evictions = Counter("tunewise:adapter_evictions", "Adapters evicted per tier.", ["model", "tier"],
                                       registry=r)
        self.load_seconds = Histogram("tunewise:adapter_load_seconds", "Time to make an adapter ready.",
                                      ["model", "source"], buckets=LOAD_BUCKETS, registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def labels_for(self, model: str, adapter: str, version: str, variant: str) -> dict[str, str]:
        """The label set for a request, folded into "other" once `max_series` sets exist."""
        key = (model, adapter, version, variant)
        with self._lock:
            if key not in self._seen:
                if len(self._seen) >= self.max_series:
                    key = (model, "other" if adapter else "", "other" if version else "", variant)
                self._seen.add(key)
        return dict(zip(LABELS, key))

    # --- batcher hooks -------------------------------------------------------------------------

    def first_token(self, request: Any, now: float) -> None:
        self.ttft.labels(**request.labels).observe(now - request.arrival)
        self.prompt_tokens.labels(**request.labels).inc(len(request.prompt_ids))
        self.generation_tokens.labels(**request.labels).inc()

    def token(self, request: Any, gap_s: float) -> None:
        self.itl.labels(**request.labels).observe(gap_s)
        self.generation_tokens.labels(**request.labels).inc()

    def finished(self, request: Any, reason: str) -> None:
        import time

        self.e2e.labels(**request.labels).observe(time.monotonic() - request.arrival)
        self.success.labels(**request.labels, finished_reason=reason).inc()

    def failed(self, request: Any) -> None:
        self.failures.labels(**request.labels).inc()

    def queue(self, model: str, running: int, waiting: int) -> None:
        self.running.labels(model=model).set(running)
        self.waiting.labels(model=model).set(waiting)


class CacheMetrics:
    """The adapter cache's hooks for one model, bound to its `model` label."""

    def __init__(self, metrics: EngineMetrics, model: str):
        self.m, self.model = metrics, model

    def adapter_event(self, what: str, tier: str = "") -> None:
        if what == "hits":
            self.m.cache_hits.labels(model=self.model).inc()
        elif what == "misses":
            self.m.cache_misses.labels(model=self.model).inc()
        elif what == "evictions":
            self.m.cache_evictions.labels(model=self.model, tier=tier).inc()

    def adapter_loaded(self, source: str, seconds: float) -> None:
        self.m.cache_loads.labels(model=self.model, source=source).inc()
        self.m.load_seconds.labels(model=self.model, source=source).observe(seconds)

    def adapter_tiers(self, stats: dict[str, Any]) -> None:
        for tier in ("model", "host"):
            self.m.cache_loaded.labels(model=self.model, tier=tier).set(stats[tier]["loaded"])
            self.m.cache_bytes.labels(model=self.model, tier=tier).set(stats[tier]["bytes"])
