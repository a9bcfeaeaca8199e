"""The deployment files in infra/: compose, Prometheus rules, Grafana dashboard.

None of them can run here, so they are checked by structure: they parse,
they have the shape their tools expect, and every metric a rule or a panel
queries is one that edustream exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from consumers.lag.exporter import METRIC_NAMES
from edustream import metrics
from edustream.settings import Settings
from streams.observability import FAUST_METRICS_PREFIX

INFRA = Path(__file__).resolve().parents[3] / "infra"
COMPOSE = INFRA / "compose.yml"
ALERTS = INFRA / "prometheus" / "alerts.yml"
PROMETHEUS = INFRA / "prometheus" / "prometheus.yml"
DASHBOARD = INFRA / "grafana" / "edustream.json"
PROVISIONING = INFRA / "grafana" / "provisioning"

# Series Prometheus makes itself.
PROMETHEUS_BUILTINS = frozenset({"up", "scrape_duration_seconds"})
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"and", "or", "unless", "bool", "offset"}
)
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
}


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def series_of(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry's families expose, labelled or not."""
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


def exported() -> set[str]:
    """Series from the lag monitor, the flows' counters and Faust's sensor."""
    flows = CollectorRegistry()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            flows.register(value)
    faust = CollectorRegistry()
    FaustMetrics.create(faust, FAUST_METRICS_PREFIX)
    return set(METRIC_NAMES) | series_of(flows) | series_of(faust)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels, ranges)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare
    )
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        is_call = bare[match.end() :].lstrip().startswith("(")
        if not is_call and match.group() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def alert_rules() -> Iterator[dict[str, Any]]:
    """Every rule of every group in alerts.yml."""
    for group in load_yaml(ALERTS)["groups"]:
        yield from group["rules"]


def dashboard_exprs() -> Iterator[str]:
    """Every query of every panel in the Grafana dashboard."""
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="worker"} == 0', {"up"}),
        (
            "sum by (flow) (rate(edustream_retries_total[5m])) > 0",
            {"edustream_retries_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (flow, le) (rate(x_bucket[5m])))",
            {"x_bucket"},
        ),
        ("a / on(group) b and c", {"a", "b", "c"}),
        ("time() - last_seconds > 120", {"last_seconds"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    """The name finder keeps metric names and drops functions and labels."""
    assert metric_names(expr) == names


def test_the_exported_set_has_every_source() -> None:
    """The names checked against include the lag, flow and Faust series."""
    names = exported()

    assert "kafka_consumergroup_group_lag_seconds" in names
    assert "edustream_dead_letters_total" in names
    assert "edustream_processing_seconds_bucket" in names
    assert "faust_total_rebalances" in names


def test_alert_rules_have_the_shape_prometheus_loads() -> None:
    """Each rule names an alert, an expression, a delay, a severity and a summary."""
    rules = list(alert_rules())

    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"Edustream[A-Z][A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")")


def test_alert_rules_query_only_exported_metrics() -> None:
    """No rule waits on a metric nobody exports."""
    known = exported() | PROMETHEUS_BUILTINS

    unknown = {
        rule["alert"]: metric_names(rule["expr"]) - known for rule in alert_rules()
    }

    assert {alert: names for alert, names in unknown.items() if names} == {}


@pytest.mark.parametrize(
    "needle",
    [
        'edustream_consumergroup_status{status="STOP"}',
        'edustream_consumergroup_status{status="STALL"}',
        "kafka_consumergroup_group_max_lag_seconds",
        "edustream_dead_letters_total",
    ],
)
def test_the_required_alerts_exist(needle: str) -> None:
    """A group in STOP or STALL, time lag and dead letters each raise an alert."""
    assert any(needle in rule["expr"] for rule in alert_rules())


def test_prometheus_scrapes_the_jobs_the_rules_name() -> None:
    """Jobs in `up{job=...}` are scraped, on the ports edustream listens on."""
    config = load_yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    named = {
        job
        for rule in alert_rules()
        for job in re.findall(r'job="([^"]+)"', rule["expr"])
    }

    assert named <= set(jobs)
    monitor_target = jobs["edustream-lag-monitor"]["static_configs"][0]["targets"]
    assert monitor_target == [f"127.0.0.1:{Settings().monitor_port}"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_dashboard_panels_are_laid_out_and_query_exported_metrics() -> None:
    """Unique ids, no overlapping panels, and every query uses our names."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    known = exported()

    assert dashboard["uid"] == "edustream"
    assert isinstance(dashboard["schemaVersion"], int)
    assert len({p["id"] for p in panels}) == len(panels)
    cells = [cell for panel in panels for cell in _cells(panel["gridPos"])]
    assert len(cells) == len(set(cells))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    unknown = {expr: metric_names(expr) - known for expr in dashboard_exprs()}
    assert {expr: names for expr, names in unknown.items() if names} == {}


def test_dashboard_covers_lag_status_and_flows() -> None:
    """The dashboard shows group status, time lag, per-partition lag and flows."""
    queried = set().union(*(metric_names(expr) for expr in dashboard_exprs()))

    assert {
        "edustream_consumergroup_status_severity",
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_consumergroup_group_lag",
        "edustream_events_in_total",
        "edustream_outputs_total",
        "edustream_dead_letters_total",
    } <= queried


def test_dashboard_variables_query_exported_metrics() -> None:
    """The group picker lists groups from a metric the monitor exports."""
    variables = json.loads(DASHBOARD.read_text(encoding="utf-8"))["templating"]
    group = next(v for v in variables["list"] if v["name"] == "group")

    (metric,) = re.findall(r"label_values\((\w+), group\)", group["definition"])
    assert metric in exported()


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    """The provisioned data source and dashboard folder are the ones used."""
    source = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    provider = load_yaml(PROVISIONING / "dashboards" / "edustream.yml")
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    picker = dashboard["templating"]["list"][0]

    assert source["datasources"][0]["uid"] == picker["current"]["value"]
    folder = provider["providers"][0]["options"]["path"]
    assert f"./grafana/edustream.json:{folder}/edustream.json:ro" in grafana["volumes"]


KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")


def test_compose_runs_three_kraft_brokers() -> None:
    """Three combined broker-controllers share a cluster id and a voter list."""
    services = load_yaml(COMPOSE)["services"]
    nodes = {name: services[name]["environment"] for name in KAFKA_NODES}

    assert {str(env["KAFKA_NODE_ID"]) for env in nodes.values()} == {"1", "2", "3"}
    assert len({env["CLUSTER_ID"] for env in nodes.values()}) == 1
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in nodes.items()}
    for name, env in nodes.items():
        assert services[name]["image"].startswith("apache/kafka:3.")
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        _check_listeners(name, env, services[name]["ports"])


def _check_listeners(name: str, env: dict[str, Any], ports: list[str]) -> None:
    protocols = dict(
        item.split(":")
        for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(
        item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )

    assert set(listeners) <= set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert advertised["INTERNAL"] == f"{name}:9092"
    external_port = advertised["EXTERNAL"].rsplit(":", 1)[1]
    assert listeners["EXTERNAL"] == f":{external_port}"
    assert f"127.0.0.1:{external_port}:{external_port}" in ports


def test_compose_has_every_service_with_pinned_images() -> None:
    """Kafka, Redis, Prometheus and Grafana, each on a fixed image version."""
    compose = load_yaml(COMPOSE)
    services = compose["services"]

    assert set(services) == {*KAFKA_NODES, "redis", "prometheus", "grafana"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image, name
        assert not image.endswith(":latest"), name


def test_compose_mounts_files_that_exist_and_declares_its_volumes() -> None:
    """Every ./ bind mount exists in infra/, every named volume is declared."""
    compose = load_yaml(COMPOSE)
    declared = set(compose["volumes"])

    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (INFRA / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)
    prometheus = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus


def _cells(grid: dict[str, int]) -> Iterator[tuple[int, int]]:
    assert grid["x"] >= 0
    assert grid["x"] + grid["w"] <= 24
    for x in range(grid["x"], grid["x"] + grid["w"]):
        for y in range(grid["y"], grid["y"] + grid["h"]):
            yield x, y
