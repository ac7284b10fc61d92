"""Production DAX hit ratios from CloudWatch (selectors.dax_cache): CloudWatch cannot run here, so
botocore's Stubber stands in for it on the real boto3 client. The Stubber checks every request
against the CloudWatch service model as well as against the exact parameters expected."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber

from sessions_app.models import AlertEvent, AlertState
from sessions_app.selectors import dax_cache
from sessions_app.selectors.dax_cache import DaxStatsUnavailable, cloudwatch_client, dax_hit_ratios
from sessions_app.services import alerts

CLUSTER = "mangaassist-dax"
NOW = datetime(2026, 3, 9, 12, 7, 42, 500000, tzinfo=timezone.utc)
# Whole minutes: the minute still running is not complete in CloudWatch yet.
START, END = datetime(2026, 3, 9, 11, 52, tzinfo=timezone.utc), datetime(2026, 3, 9, 12, 7, tzinfo=timezone.utc)


@pytest.fixture
def production_dax(settings):
    settings.DAX_STATS_URL = None
    settings.DAX_CLUSTER_NAME = CLUSTER
    settings.AWS_REGION = "eu-west-1"
    client = cloudwatch_client()
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _query(query_id: str, metric: str) -> dict:
    return {"Id": query_id, "ReturnData": True,
            "MetricStat": {"Metric": {"Namespace": "AWS/DAX", "MetricName": metric,
                                      "Dimensions": [{"Name": "ClusterId", "Value": CLUSTER}]},
                           "Period": 60, "Stat": "Sum"}}


EXPECTED_QUERIES = [_query("item_hits", "ItemCacheHits"), _query("item_misses", "ItemCacheMisses"),
                    _query("query_hits", "QueryCacheHits"), _query("query_misses", "QueryCacheMisses")]


def _expected(**extra) -> dict:
    return {"MetricDataQueries": EXPECTED_QUERIES, "StartTime": START, "EndTime": END,
            "ScanBy": "TimestampDescending", **extra}


def _result(query_id: str, *values: float) -> dict:
    stamps = [END - timedelta(minutes=i + 1) for i in range(len(values))]
    return {"Id": query_id, "Label": query_id, "Timestamps": stamps, "Values": list(values), "StatusCode": "Complete"}


def test_the_client_is_built_once_per_region_with_short_timeouts(settings):
    settings.AWS_REGION = "eu-west-1"
    client = cloudwatch_client()
    assert cloudwatch_client() is client
    assert client.meta.region_name == "eu-west-1" and client.meta.service_model.service_name == "cloudwatch"
    assert client.meta.config.connect_timeout <= 2 and client.meta.config.read_timeout <= 5
    assert client.meta.config.retries["total_max_attempts"] <= 2
    settings.AWS_REGION = "us-west-2"
    assert cloudwatch_client() is not client and cloudwatch_client().meta.region_name == "us-west-2"


def test_the_ratios_add_up_every_minute_of_the_window(production_dax):
    production_dax.add_response("get_metric_data", {"MetricDataResults": [
        _result("item_hits", 300, 250, 50),
        _result("item_misses", 100, 150, 50),
        _result("query_hits", 90),
        _result("query_misses", 10),
    ]}, _expected())
    ratios = dax_hit_ratios(seconds=15 * 60, now=NOW)
    assert ratios.source == "cloudwatch" and ratios.seconds == 15 * 60 and not ratios.short
    assert (ratios.item_hits, ratios.item_misses, ratios.item_requests) == (600, 300, 900)
    assert ratios.item_hit_ratio == pytest.approx(600 / 900)
    assert (ratios.query_hits, ratios.query_misses) == (90, 10) and ratios.query_hit_ratio == pytest.approx(0.9)


def test_every_page_is_read(production_dax):
    production_dax.add_response("get_metric_data", {
        "MetricDataResults": [_result("item_hits", 40), {**_result("item_misses", 10), "StatusCode": "PartialData"}],
        "NextToken": "page-2"}, _expected())
    production_dax.add_response("get_metric_data", {"MetricDataResults": [_result("item_misses", 50)]},
                                _expected(NextToken="page-2"))
    ratios = dax_hit_ratios(seconds=15 * 60, now=NOW)
    assert (ratios.item_hits, ratios.item_misses) == (40, 60)
    assert ratios.query_requests == 0 and ratios.query_hit_ratio is None


def test_no_datapoint_is_no_data_not_a_zero_ratio(production_dax):
    production_dax.add_response("get_metric_data", {"MetricDataResults": [
        {"Id": q["Id"], "Label": q["Id"], "Timestamps": [], "Values": [], "StatusCode": "Complete"}
        for q in EXPECTED_QUERIES]}, _expected())
    assert dax_hit_ratios(seconds=15 * 60, now=NOW) is None


def test_a_cloudwatch_error_is_unavailable(production_dax):
    production_dax.add_client_error("get_metric_data", service_error_code="AccessDenied", http_status_code=403,
                                    service_message="not allowed", expected_params=_expected())
    with pytest.raises(DaxStatsUnavailable, match="AccessDenied"):
        dax_hit_ratios(seconds=15 * 60, now=NOW)


def test_without_a_stats_url_or_a_cluster_name_there_is_no_source(settings):
    settings.DAX_STATS_URL, settings.DAX_CLUSTER_NAME = None, None
    assert dax_cache.dax_source() is None and dax_hit_ratios(seconds=900, now=NOW) is None


def test_the_sweep_reads_cloudwatch_once_for_both_dax_rules(production_dax, console, settings):
    """In production the rule fires from CloudWatch's numbers: one GetMetricData serves the item
    and the query rule; the item ratio is low on enough lookups, the query ratio is fine."""
    settings.ALERT_WEBHOOK_URL = None
    production_dax.add_response("get_metric_data", {"MetricDataResults": [
        _result("item_hits", 60, 40), _result("item_misses", 100, 50),
        _result("query_hits", 950), _result("query_misses", 50),
    ]}, _expected())
    transitions = alerts.evaluate(NOW)
    assert [(t.rule, t.kind) for t in transitions] == [("dax_item_hit_ratio_low", "fired")]
    assert transitions[0].value == pytest.approx(100 / 250) and not transitions[0].delivered
    assert transitions[0].error == "ALERT_WEBHOOK_URL is not set"
    state = AlertState.objects.get(rule="dax_query_hit_ratio_low")
    assert state.state == "ok" and state.value == pytest.approx(0.95) and state.check_note == ""
    event = AlertEvent.objects.get(rule="dax_item_hit_ratio_low")
    assert event.message == "DAX item cache hit ratio: 40.0 % (below 80.0 %) over the last 15 min, 250 requests"
    assert event.delivery_error == "not sent: ALERT_WEBHOOK_URL is not set"
