"""Totals read from an instance's Prometheus text, summed over their labels."""

from __future__ import annotations

from benchmarks.loadtest.sampling import parse_metrics

EXPOSITION = """\
# HELP http_server_request_duration_seconds Duration of HTTP server requests.
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_route="/media/{token}",le="0.005"} 90
http_server_request_duration_seconds_count{http_route="/media/{token}",status="206"} 120
http_server_request_duration_seconds_sum{http_route="/media/{token}",status="206"} 0.75
http_server_request_duration_seconds_count{http_route="/v1/Recordings"} 30 1700000000000
http_server_request_duration_seconds_sum{http_route="/v1/Recordings"} 0.25
process_resident_memory_bytes 1.2e+08
"""


def test_totals_are_summed_over_labels_and_buckets_are_left_out() -> None:
    assert parse_metrics(EXPOSITION) == {
        "http_server_request_duration_seconds_count": 150.0,
        "http_server_request_duration_seconds_sum": 1.0,
        "process_resident_memory_bytes": 1.2e8,
    }


def test_a_label_value_with_spaces_and_braces_does_not_shift_the_value() -> None:
    text = 'http_server_request_duration_seconds_count{ua="a b} c"} 7\n'
    assert parse_metrics(text) == {"http_server_request_duration_seconds_count": 7.0}


def test_text_that_is_not_prometheus_gives_no_totals() -> None:
    assert parse_metrics("<html>not found</html>\n") == {}
