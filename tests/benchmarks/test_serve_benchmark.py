"""The serve benchmark's table: every row printed, and the Goals' ratios computed from the right rows."""

from hrnet_pose.benchmarks.serve import format_serve_table


def _row(row, persons, clients, p50, server, throughput, **extra):
    return {"row": row, "persons": persons, "clients": clients, "requests": 10, "p50_ms": p50, "p95_ms": p50 * 1.5,
            "mean_ms": p50, "server_ms": server, "throughput": throughput, "failed": 0, **extra}


def test_table_rows_and_ratios():
    rows = [_row("in-process PoseEstimator", 1, 1, 100.0, 90.0, 10.0, detect_ms=50.0, pose_ms=40.0),
            _row("REST POST /v1/pose, sequential", 1, 1, 120.0, 105.0, 8.0, detect_ms=50.0, pose_ms=40.0),
            _row("REST POST /v1/pose, sequential", 6, 1, 200.0, 190.0, 5.0, detect_ms=50.0, pose_ms=120.0),
            _row("REST POST /v1/pose, 8 concurrent clients", 6, 8, 900.0, float("nan"), 7.5, rss_start_mb=900.0,
                 rss_tenth_mb=910.0, rss_end_mb=911.0),
            _row("webcam page", 1, 1, 80.0, float("nan"), 24.0, dropped_by_server=3)]
    table = format_serve_table(rows)
    assert table.count("\n| ") == len(rows)  # one line per row after the header
    assert "server time / in-process (decode + call) = 1.05" in table
    assert "REST p50 end to end / in-process = 1.20" in table
    assert "8 clients / 1 client throughput = 1.50" in table
    assert "911 MB after 10" in table and "3 stale frames dropped" in table
