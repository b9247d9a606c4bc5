"""The short form of the security hardening scenarios (benchmarks/hardening/security.py) passes."""

from __future__ import annotations

from pathlib import Path

from benchmarks.hardening import security
from benchmarks.hardening.common import Report


async def test_security_scenarios_short(tmp_path: Path) -> None:
    reports = await security.run(False, tmp_path)
    for report in reports:
        print(report.format())
    assert [r.format() for r in reports if r.problems] == []
    by_name: dict[str, Report] = {r.name: r for r in reports}
    assert len(by_name) == 10

    logins = by_name["security: logins"].figures
    assert logins["accepted"] == 0
    assert logins["attempts"] == logins["refused"]
    assert isinstance(logins["attempts"], int) and logins["attempts"] >= 20

    acl = by_name["security: ACL bypass"].figures
    assert acl["messages leaked"] == 0
    assert isinstance(acl["refused"], int) and isinstance(acl["forbidden filters"], int)
    assert acl["refused"] >= acl["forbidden filters"]
    assert isinstance(acl["bait published"], int) and acl["bait published"] > 0

    forged = by_name["security: forged chat identity"].figures
    assert forged["forged messages delivered"] == 0
    assert isinstance(forged["PUBACK/PUBREC 0x87 (MQTT 5)"], int) and forged["PUBACK/PUBREC 0x87 (MQTT 5)"] > 0

    takeover = by_name["security: session takeover"].figures
    assert takeover["queued messages leaked"] == 0
    assert takeover["live messages leaked"] == 0
    assert takeover["queued messages bob lost"] == 0
    assert takeover["bob's live connection closed by alice"] == "no"
    assert takeover["alice with bob's client id while bob is connected, clean start"] == "refused (0x87 Not authorized)"

    tls = by_name["security: TLS"].figures
    assert tls["unexpected outcomes"] == 0
    assert isinstance(tls["refused as expected"], int) and tls["refused as expected"] >= 10
    assert tls["accepted as expected"] == 2

    assert by_name["security: passwords kept secret"].figures["leaks found"] == 0

    flood = by_name["security: pre-login flood"].figures
    assert isinstance(flood["max_packet_size 64 KiB: RSS growth MiB"], float)
    assert flood["max_packet_size 64 KiB: RSS growth MiB"] < 32
    assert isinstance(flood["default limits: RSS growth MiB"], float) and flood["default limits: RSS growth MiB"] < 48
    assert flood["that connection closed after s"] != "never"
    assert isinstance(flood["CONNACK declaring 232 MB: closed after ms"], float)
    assert isinstance(flood["CONNECT declaring 268 MB: closed after ms"], float)

    logins_flood = by_name["security: login flood"].figures
    assert not any(key.startswith("bad logins answered 0x00") for key in logins_flood)
    for kind in ("cached, other source", "full check, other source"):
        assert isinstance(logins_flood[f"{kind} logins"], int) and logins_flood[f"{kind} logins"] > 0
        assert isinstance(logins_flood[f"{kind} login ms (max)"], float)
        assert logins_flood[f"{kind} login ms (max)"] < 500

    timing = by_name["security: user enumeration by timing"].figures
    quick = timing["unknown names answered as fast as a 101-iteration user"]
    assert isinstance(quick, int) and 0 < quick < timing["unknown names"]  # type: ignore[operator]

    hostile = by_name["security: hostile strings"].figures
    assert hostile["raw control characters in the log"] == 0 and hostile["forged log lines"] == 0
    assert hostile["raw control characters sub wrote"] == 0
    assert hostile["topics with control characters refused (0x81)"] == "3/3"
    assert isinstance(hostile["broker log lines with them"], int) and hostile["broker log lines with them"] >= 6
