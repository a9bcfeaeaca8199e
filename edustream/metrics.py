"""Prometheus metrics every flow reports, through prometheus-client.

Counters are labelled by flow (aid, billing, growth) so one dashboard shows
all three side by side. Lag metrics live with the lag monitor.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_IN = Counter(
    "edustream_events_in_total", "Input events taken by a flow", ["flow", "topic"]
)
OUTPUTS = Counter(
    "edustream_outputs_total", "Output records a flow emitted", ["flow", "topic"]
)
DEAD_LETTERS = Counter(
    "edustream_dead_letters_total",
    "Inputs a flow sent to its dead-letter topic",
    ["flow", "reason"],
)
RETRIES = Counter(
    "edustream_retries_total", "Retries after a retriable failure", ["flow"]
)
LATENCY = Histogram(
    "edustream_processing_seconds",
    "Time from taking an input to finishing its outputs",
    ["flow"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
