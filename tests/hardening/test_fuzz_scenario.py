"""The short form of the fuzzing scenario (``python -m benchmarks.hardening --only fuzz --long`` runs the long one):
random and mutated input, the specification's malformed packets and slow connections against a broker process,
while a well-behaved client keeps doing round trips. Each report must have no problem; its key figures are checked
here too. The scenario runs once for the module; each report is its own test, so one defect fails one test."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.hardening import fuzz
from benchmarks.hardening.common import Report


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    results = asyncio.run(fuzz.run(False, tmp_path_factory.mktemp("fuzz")))
    for report in results:
        print(report.format())
    return {report.name: report for report in results}


def _check_common(report: Report) -> None:
    assert report.problems == [], report.format()
    assert report.figures["broker alive"] == "yes"
    assert report.figures["round trips failed"] == 0
    assert report.figures["round trips ok"] >= 10, report.format()  # type: ignore[operator]
    assert report.figures["not closed in time"] == 0
    assert report.figures["broker log errors"] == 0


def test_five_reports(reports: dict[str, Report]) -> None:
    assert list(reports) == [
        "fuzz random bytes",
        "fuzz mutated packets",
        "fuzz spec cases",
        "fuzz slow connections",
        "fuzz WebSocket/TLS before login",
    ]


def test_random_bytes_are_all_closed(reports: dict[str, Report]) -> None:
    report = reports["fuzz random bytes"]
    _check_common(report)
    assert report.figures["connections"] == fuzz.SHORT.random
    assert report.figures["closed by the broker"] == fuzz.SHORT.random
    assert report.figures["undecodable replies"] == 0


def test_mutated_packets_are_all_closed(reports: dict[str, Report]) -> None:
    report = reports["fuzz mutated packets"]
    _check_common(report)
    assert report.figures["connections"] == fuzz.SHORT.mutated
    assert report.figures["closed by the broker"] == fuzz.SHORT.mutated
    assert report.figures["undecodable replies"] == 0
    # The mutations reach past CONNECT: the broker refuses some packets of a connected client with a DISCONNECT.
    disconnects = sum(v for k, v in report.figures.items() if k.startswith("DISCONNECT 0x"))  # type: ignore[misc]
    assert disconnects > 0, report.format()


def test_spec_cases_are_answered_as_specified(reports: dict[str, Report]) -> None:
    report = reports["fuzz spec cases"]
    _check_common(report)
    assert report.figures["cases"] == len(fuzz.spec_cases())
    assert report.figures["as specified"] == report.figures["cases"]
    for code in ("0x81", "0x82", "0x90", "0x93", "0x94", "0x95"):
        assert report.figures[f"DISCONNECT {code}"] > 0, report.format()  # type: ignore[operator]
    assert report.figures["CONNACK rc 1"] == 2


def test_slow_connections_are_closed_on_time(reports: dict[str, Report]) -> None:
    report = reports["fuzz slow connections"]
    _check_common(report)
    assert report.figures["closed by the broker"] == report.figures["connections"]


def test_websocket_and_tls_connections_are_closed_on_time(reports: dict[str, Report]) -> None:
    """Idle and trickling upgrades, a silent upgraded connection and TLS handshakes that never finish are closed
    after connect_timeout; a 300 MB frame before CONNECT at its header."""
    report = reports["fuzz WebSocket/TLS before login"]
    _check_common(report)
    assert report.figures["closed by the broker"] == report.figures["connections"]
    for group in (fuzz.WS_SILENT, fuzz.WS_SLOWLORIS, fuzz.WS_UPGRADED_SILENT, fuzz.TLS_SILENT, fuzz.TLS_TRICKLE):
        assert str(report.figures[group]).startswith(f"{fuzz.SHORT.listeners}/{fuzz.SHORT.listeners} closed")
    assert str(report.figures[fuzz.WS_GIANT_FRAME]).startswith("1/1 closed")
