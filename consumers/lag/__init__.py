"""Consumer lag monitor: offset lag, time lag and Burrow status per partition.

Duties, one module each:

- ``model``: the status names and their severity, and the report records;
- ``burrow``: the commit window and Burrow's rules that judge it;
- ``timelag``: the log end offset lookup table that estimates time lag;
- ``monitor``: the state for every group and partition, fed by the poller.

Those four are pure: the poller reads offsets from Kafka and passes them in.
Around them, also pure:

- ``flows``: each flow's throughput and dead letters from log end offsets;
- ``view``, ``history``, ``changes``: one poll's document, the last minutes
  of polls, and group status changes;
- ``table``: the ``edustream lag`` table.

And the parts that do I/O, imported only by the processes that need them:

- ``offsets``: the poller's reads from Kafka;
- ``service``: the poll loop;
- ``exporter``: Prometheus metrics;
- ``web``: the dashboard, JSON API, metrics and probes.
"""

from consumers.lag.burrow import (
    WINDOW_SIZE,
    Commit,
    PartitionWindow,
    Sample,
    evaluate,
    group_status,
)
from consumers.lag.model import GroupLag, PartitionLag, Status
from consumers.lag.monitor import LagMonitor, summarise
from consumers.lag.timelag import TABLE_SIZE, LogEndPoint, TimeLagEstimator

__all__ = [
    "TABLE_SIZE",
    "WINDOW_SIZE",
    "Commit",
    "GroupLag",
    "LagMonitor",
    "LogEndPoint",
    "PartitionLag",
    "PartitionWindow",
    "Sample",
    "Status",
    "TimeLagEstimator",
    "evaluate",
    "group_status",
    "summarise",
]
