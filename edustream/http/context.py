"""What every route module gets: settings, a Kafka producer and Redis."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio
from aiokafka import AIOKafkaProducer

from edustream.settings import Settings


@dataclass
class Context:
    """Shared clients for the HTTP service's handlers."""

    settings: Settings
    producer: AIOKafkaProducer
    redis: redis.asyncio.Redis
