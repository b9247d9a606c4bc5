"""The short forms of the fault-injection and load scenarios (``python -m benchmarks.hardening --long`` runs the
long ones): each must report no problem, and the figures that prove it are checked here too."""

from __future__ import annotations

from pathlib import Path

from benchmarks.hardening import faults, load
from benchmarks.hardening.common import raise_file_limit


async def test_chaotic_link_and_broker_crashes_lose_nothing_acknowledged(tmp_path: Path) -> None:
    reports = await faults.run(False, tmp_path)
    for report in reports:
        print(report.format())
    for report in reports:
        assert report.problems == [], report.format()
        assert report.figures["v5-qos2 lost"] == 0 and report.figures["v311-qos1 lost"] == 0
        assert report.figures["acknowledged"] >= 1000  # type: ignore[operator]
        faults_injected = sum(report.figures[k] for k in ("cuts", "drops", "half-closes", "stalls"))  # type: ignore[misc]
        assert faults_injected >= 10, report.format()
    assert reports[1].figures["broker kills"] == 2


async def test_many_clients_slow_subscribers_junk_connections_and_a_reconnect_storm(tmp_path: Path) -> None:
    raise_file_limit()
    reports = await load.run(False, tmp_path)
    for report in reports:
        print(report.format())
    for report in reports:
        assert report.problems == [], report.format()
    traffic, slowness, junk, storm, long_topics = reports
    assert traffic.figures["clients connected"] == 1000
    assert slowness.figures["drops counted by the broker"] > 0  # type: ignore[operator]
    assert junk.figures["closed by the broker"] == junk.figures["connections"]
    assert storm.figures["reconnected"] == storm.figures["clients"]
    # Distinct 65 KB topics nobody reads: the broker's caches keep none of them (it grew by 900 MB for 10,000).
    figures = long_topics.figures
    assert figures["topics"] == 2000 and figures["sent MB"] == 130
    growth = figures["mqttchat RSS peak MiB"] - figures["mqttchat RSS before MiB"]  # type: ignore[operator]
    assert growth < load.TOPIC_CACHE_GROWTH_LIMIT_MIB
