"""deploy/prometheus/alerts.yml: the console's alert rules as Prometheus alerting rules.

Always: the file loads and has the shape Prometheus wants, every metric it names is one the
product exports (or the CloudWatch exporter's DAX metrics), its alerts are the sweep's rules
(services.alerts.RULES marked ``prometheus``) with the settings' default thresholds. With
promtool on PATH (Debian's ``prometheus`` package): ``promtool check rules``, and ``promtool test
rules`` on series that must fire and series that must not (a thin sample among them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from prometheus_client.metrics import MetricWrapperBase

from sessions_app.observability import metrics
from sessions_app.services.alerts import RULES

RULES_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")

DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _exported_names() -> set[str]:
    """Every sample name observability.metrics can expose (counters as ``_total``, histograms
    as ``_bucket``/``_count``/``_sum``), from the metric objects themselves."""
    names = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        family = value.describe()[0]
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum", "_created")}
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: identifiers left once strings, label matchers,
    ranges, grouping clauses, function calls and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_the_file_has_the_shape_prometheus_wants():
    document = yaml.safe_load(RULES_FILE.read_text())
    assert isinstance(document["groups"], list) and document["groups"]
    for group in document["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert re.fullmatch(r"[a-z_][a-z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert DURATION.match(str(rule["for"])), rule["for"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()


def test_every_metric_is_exported_by_the_product_or_the_cloudwatch_exporter():
    exported = _exported_names()
    seen = set()
    for rule in _rules():
        for name in metric_names(rule["expr"]):
            seen.add(name)
            assert name.startswith(("mangaassist_", "aws_dax_")), f"{rule['alert']}: {name}"
            if name.startswith("mangaassist_"):
                assert name in exported, f"{rule['alert']} uses {name}, which observability.metrics does not define"
    # The extractor itself found what the file is about (a walker that finds nothing passes all).
    assert {"aws_dax_item_cache_hits_sum", "mangaassist_http_request_duration_seconds_count",
            "mangaassist_dax_breaker_open", "mangaassist_context_loads_total"} <= seen


def test_the_extractor_skips_functions_labels_and_keywords():
    expr = 'sum by (route) (rate(x_total{status=~"5.."}[5m])) / on() group_left sum(y) > 0.5 and z offset 5m'
    assert metric_names(expr) == {"x_total", "y", "z"}


def test_the_alerts_are_the_sweeps_rules_with_its_default_thresholds():
    by_name = {rule["alert"]: rule for rule in _rules()}
    assert set(by_name) == {rule.name for rule in RULES if rule.prometheus}
    for rule in RULES:
        if not rule.prometheus or rule.min_sample is None:
            continue
        expr = by_name[rule.name]["expr"]
        sign = "<" if rule.comparison == "below" else ">"
        assert f"{sign} {rule.threshold():.2f}" in expr, (rule.name, expr)
        assert f">= {rule.min_sample()}" in expr, (rule.name, expr)
    assert settings.ALERT_HIT_RATIO_BELOW == 0.80 and settings.ALERT_ERROR_RATE_ABOVE == 0.05


@needs_promtool
def test_promtool_checks_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


# Series each minute (promtool's notation: '50x40' is 50 for 41 samples, '0+10x40' counts up by
# 10), and what must be firing 25 minutes in. "thin" has the same bad ratio on too few requests.
UNIT_TEST = {
    "evaluation_interval": "1m",
    "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'aws_dax_item_cache_hits_sum{cluster_id="low"}', "values": "50x40"},
            {"series": 'aws_dax_item_cache_misses_sum{cluster_id="low"}', "values": "50x40"},
            {"series": 'aws_dax_item_cache_hits_sum{cluster_id="thin"}', "values": "2x40"},
            {"series": 'aws_dax_item_cache_misses_sum{cluster_id="thin"}', "values": "2x40"},
            {"series": 'aws_dax_item_cache_hits_sum{cluster_id="fine"}', "values": "95x40"},
            {"series": 'aws_dax_item_cache_misses_sum{cluster_id="fine"}', "values": "5x40"},
            {"series": 'aws_dax_query_cache_hits_sum{cluster_id="fine"}', "values": "95x40"},
            {"series": 'aws_dax_query_cache_misses_sum{cluster_id="fine"}', "values": "5x40"},
            {"series": 'mangaassist_context_loads_total{source="redis"}', "values": "0+50x40"},
            {"series": 'mangaassist_context_loads_total{source="dynamodb"}', "values": "0+50x40"},
            {"series": 'mangaassist_http_request_duration_seconds_count{route="r",method="GET",status="200"}',
             "values": "0+100x40"},
            {"series": 'mangaassist_http_request_duration_seconds_count{route="r",method="GET",status="503"}',
             "values": "0+10x40"},
            {"series": 'mangaassist_redis_degraded_events_total{operation="rate_limit_hit"}', "values": "0x40"},
            {"series": 'mangaassist_dax_breaker_open{instance="web-1"}', "values": "0x10 1x30"},
            {"series": 'mangaassist_dax_breaker_open{instance="web-2"}', "values": "0x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "25m", "alertname": "dax_item_hit_ratio_low",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "cluster_id": "low"}}]},
            {"eval_time": "25m", "alertname": "dax_query_hit_ratio_low", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "context_hit_ratio_low",
             "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
            {"eval_time": "25m", "alertname": "http_error_rate_high",
             "exp_alerts": [{"exp_labels": {"severity": "critical"}}]},
            {"eval_time": "25m", "alertname": "redis_degraded", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "dax_breaker_open", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "dax_breaker_open",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "instance": "web-1"}}]},
        ],
    }],
}


@needs_promtool
def test_promtool_unit_tests_fire_what_should_and_nothing_else(tmp_path):
    # promtool compares annotations too: a copy without them tests the expressions, labels and
    # for: durations (the annotations' templates are checked by `check rules` above).
    document = yaml.safe_load(RULES_FILE.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump(document, sort_keys=False))
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], **UNIT_TEST}, sort_keys=False))
    result = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
