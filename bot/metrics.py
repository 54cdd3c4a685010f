"""Prometheus metrics of one expbot process: Slack requests and acks, provider calls, transitions, Slack API
errors and retries, and the outbox."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.store import Store
from providers.errors import ProviderError

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StoreGauges(Collector):
    """Read at scrape time from the store: requests by status, tracked experiments, the outbox."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        by_status = GaugeMetricFamily("expbot_requests", "Change requests in the store, by status", labels=["status"])
        for status, count in sorted(self.store.request_counts().items()):
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily("expbot_experiments", "Experiments tracked", value=self.store.experiment_count())
        stats = self.store.outbox_stats()
        yield GaugeMetricFamily("expbot_outbox_depth", "Slack messages waiting to be delivered", value=stats.depth)
        yield GaugeMetricFamily(
            "expbot_outbox_oldest_age_seconds",
            "Age of the oldest undelivered Slack message",
            value=stats.oldest_age or 0,
        )
        yield GaugeMetricFamily(
            "expbot_outbox_given_up", "Slack messages given up after an error retrying cannot fix", value=stats.dead
        )


class _IntakeCounters(Collector):
    """The front door's counts: requests turned away by reason (413, 401, 400), read at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        rejected = CounterMetricFamily(
            "expbot_slack_requests_rejected", "Requests turned away before Slack code saw them", labels=["reason"]
        )
        for reason, n in sorted(self.counts().items()):
            rejected.add_metric([reason], n)
        yield rejected


class Metrics:
    """Every counter and histogram in its own registry, so several apps can live in one process (tests)."""

    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.slack_requests = Counter(
            "expbot_slack_requests", "Slack requests received, by kind and outcome", ["kind", "outcome"], registry=r
        )
        self.ack_seconds = Histogram(
            "expbot_ack_seconds",
            "Time from a Slack request to its acknowledgement",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.provider_calls = Counter(
            "expbot_provider_calls", "Calls to providers, by provider and status", ["provider", "status"], registry=r
        )
        self.provider_seconds = Histogram(
            "expbot_provider_call_seconds", "Provider call latency", ["provider"], buckets=CALL_BUCKETS, registry=r
        )
        self.transitions = Counter(
            "expbot_request_transitions", "Change-request transitions, by the status reached", ["to"], registry=r
        )
        self.slack_api_errors = Counter(
            "expbot_slack_api_errors", "Slack Web API errors, by error code", ["error"], registry=r
        )
        self.slack_api_retries = Counter(
            "expbot_slack_api_retries", "Slack Web API calls retried, by reason", ["reason"], registry=r
        )
        self.outbox = Counter(
            "expbot_outbox_attempts",
            "Outbox delivery attempts, by message kind and result",
            ["kind", "result"],
            registry=r,
        )
        if store is not None:
            r.register(_StoreGauges(store))

    @contextlib.contextmanager
    def provider_call(self, provider: str) -> Iterator[None]:
        """Count and time one provider call; its status is the HTTP status of a failure, or ok."""
        start, status = time.perf_counter(), "ok"
        try:
            yield
        except ProviderError as err:
            status = str(err.status or type(err).__name__)
            raise
        finally:
            self.provider_calls.labels(provider, status).inc()
            self.provider_seconds.labels(provider).observe(time.perf_counter() - start)

    def watch_intake(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_IntakeCounters(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
