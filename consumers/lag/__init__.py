"""Consumer lag monitor: offset lag, time lag and Burrow status per partition.

Duties, one module each:

- ``model``: the status names and their severity, and the report records;
- ``burrow``: the commit window and Burrow's rules that judge it;
- ``timelag``: the log end offset lookup table that estimates time lag;
- ``monitor``: the state for every group and partition, fed by the poller.

The code here is pure: the poller reads offsets from Kafka and passes them in.
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
