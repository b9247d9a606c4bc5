"""Choosing decoders (rules per filter, automatic detection, content types), the byte-bounded cache, the external
command decoder, and the publish side's encoders."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import zlib
from pathlib import Path

import cbor2
import msgpack
import pytest

from mqttchat.explorer.decoders import (
    DECODERS,
    DecodeLimits,
    DecoderRule,
    DecoderRules,
    PayloadDecoders,
    content_type_decoder,
    encode_payload_text,
)
from mqttchat.explorer.decoders.service import DecodeCache

# ---------------------------------------------------------------------------------------------- automatic choice


@pytest.mark.parametrize(
    ("payload", "decoder", "fmt"),
    [(b'{"a": 1}', "json", "json"), (b"hello", "text", "text"), (b"\x00\x01", "binary", "binary"),
     (b"", "empty", "empty"), (gzip.compress(b'{"a": 1}', mtime=0), "gzip+json", "json"),
     (zlib.compress(b"plain words"), "zlib+text", "text"),
     (gzip.compress(gzip.compress(b"[1]", mtime=0), mtime=0), "gzip+gzip+json", "json"),
     (b"x^ looks like a zlib header", "text", "text")],
)  # fmt: skip
def test_automatic_detection(payload: bytes, decoder: str, fmt: str) -> None:
    result = PayloadDecoders().decode("any/topic", payload)
    assert result.ok and result.auto and (result.decoder, result.format) == (decoder, fmt)


def test_cbor_and_msgpack_are_never_guessed_but_follow_the_content_type() -> None:
    decoders = PayloadDecoders()
    data = cbor2.dumps({"t": 1})
    assert decoders.decode("a", data).format == "binary"
    assert decoders.decode("a", data, content_type="application/cbor").fields == {"t": 1.0}
    packed = msgpack.packb({"t": 2})
    assert decoders.decode("a", packed, content_type="application/x-msgpack; v=1").fields == {"t": 2.0}
    wrong = decoders.decode("a", b"plain", content_type="application/cbor")
    assert wrong.ok and wrong.format == "text" and wrong.notes[0].startswith("content type application/cbor, but")
    assert content_type_decoder("application/ld+json") == "json" and content_type_decoder("text/csv") == "text"
    assert content_type_decoder("image/png") is None and content_type_decoder(None) is None


# ---------------------------------------------------------------------------------------------------------- rules


def test_first_matching_rule_wins_and_choosing_puts_a_rule_first() -> None:
    rules = DecoderRules([DecoderRule("plant/#", "cbor"), DecoderRule("plant/+/raw", "hex")])
    assert rules.rule_for("plant/a/raw").decoder == "cbor"  # type: ignore[union-attr]
    assert rules.rule_for("other") is None
    version = rules.version
    rules.choose(DecoderRule("plant/+/raw", "msgpack"))
    assert [rule.filter for rule in rules] == ["plant/+/raw", "plant/#"] and rules.version > version
    assert rules.rule_for("plant/a/raw").decoder == "msgpack"  # type: ignore[union-attr]
    assert rules.forget("plant/+/raw") and not rules.forget("plant/+/raw")
    assert rules.rule_for("plant/a/raw").decoder == "cbor"  # type: ignore[union-attr]


def test_choosing_a_decoder_changes_what_a_topic_shows() -> None:
    decoders = PayloadDecoders()
    data = msgpack.packb([1, 2])
    assert decoders.decode("dev/1", data).format == "binary"
    decoders.choose(DecoderRule("dev/#", "msgpack"))
    assert decoders.decode("dev/1", data).to_json() == [1, 2]
    with pytest.raises(ValueError, match="unknown decoder 'cbr'; did you mean 'cbor'"):
        decoders.choose(DecoderRule("dev/#", "cbr"))
    preview = decoders.decode_as(DecoderRule("dev/#", "hex"), "dev/1", data)
    assert preview.format == "binary" and decoders.decode("dev/1", data).format == "msgpack"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [(DecoderRule("a/#/b", "json"), ("filter", "")), (DecoderRule("", "json"), ("filter", "must not be empty")),
     (DecoderRule("#", "json+gzip"), ("decoder", "json makes the final value, so it must come last")),
     (DecoderRule("#", ""), ("decoder", "no decoder named")),
     (DecoderRule("#", "protobuf", message="a.B"), ("descriptor_set", "go together")),
     (DecoderRule("#", "command"), ("command", "the command decoder needs it")),
     (DecoderRule("#", "command", command=("x",), timeout=0.0), ("timeout", "must be more than 0")),
     (DecoderRule("#", "command", command=("",)), ("command", "non-empty"))],
)  # fmt: skip
def test_rule_problems(rule: DecoderRule, problem: tuple[str, str]) -> None:
    key, words = problem
    found = rule.problems()
    assert found and found[0][0] == key and words in found[0][1]


def test_rules_round_trip_through_their_tables() -> None:
    rule = DecoderRule("m/+", "struct", struct="<hf", fields=("a", "b"))
    assert rule.to_table() == {"filter": "m/+", "decoder": "struct", "struct": "<hf", "fields": ["a", "b"]}
    assert DecoderRule("c", "command", command=("x", "-j"), timeout=5.0).to_table()["timeout"] == 5.0
    assert set(DECODERS) >= {"auto", "json", "sparkplug", "protobuf", "cbor", "msgpack", "struct", "command"}


# ---------------------------------------------------------------------------------------------------------- cache


def test_the_cache_hits_for_equal_bytes_and_stays_within_its_bytes() -> None:
    decoders = PayloadDecoders(cache_bytes=64 * 1024)
    first = decoders.decode("a", b'{"n": 1}')
    assert decoders.decode("a", b'{"n": 1}') is first and decoders.cache.stats.hits == 1
    for i in range(2_000):
        decoders.decode("a", json.dumps({"n": i, "pad": "x" * 50}).encode())
    assert decoders.cache.bytes <= 64 * 1024 and decoders.cache.stats.evictions > 0
    assert 0 < len(decoders.cache) < 2_000
    huge = json.dumps(list(range(20_000))).encode()
    assert decoders.decode("a", huge).ok and decoders.cache.stats.uncached == 1


def test_changing_the_rules_drops_what_was_cached() -> None:
    decoders = PayloadDecoders()
    assert decoders.decode("t", b"[1]").format == "json"
    decoders.choose(DecoderRule("t", "hex"))
    assert decoders.decode("t", b"[1]").format == "binary"


def test_cache_counts_its_keys() -> None:
    cache = DecodeCache(max_bytes=10_000)
    result = PayloadDecoders().decode("t", b"1")
    cache.put(("t" * 5_000, b"", None, 0, 0), result)
    assert len(cache) == 0 and cache.stats.uncached == 1  # the key alone is half the budget


# ------------------------------------------------------------------------------------------------ external command


def command_rule(script: str, timeout: float = 5.0) -> DecoderRule:
    return DecoderRule("#", "command", command=(sys.executable, "-c", script), timeout=timeout)


async def test_command_output_as_json_and_as_text() -> None:
    decoders = PayloadDecoders(
        [command_rule("import sys, json; print(json.dumps({'n': len(sys.stdin.buffer.read())}))")]
    )
    pending = decoders.decode("t", b"abc")
    assert pending.pending and not pending.ok and pending.summary() == "decoding…"
    result = await decoders.decode_async("t", b"abc")
    assert result.ok and result.format == "command" and result.fields == {"n": 3.0}
    assert decoders.decode("t", b"abc") is result  # cached: no second run
    text = PayloadDecoders([command_rule("import sys; sys.stdout.write(sys.stdin.read().upper())")])
    assert (await text.decode_async("t", b"shout")).text == "SHOUT"


async def test_command_payload_larger_than_a_pipe_buffer() -> None:
    decoders = PayloadDecoders([command_rule("import sys; print(len(sys.stdin.buffer.read()))")])
    assert (await decoders.decode_async("t", bytes(1_000_000))).fields == {"": 1_000_000.0}


async def test_command_failures() -> None:
    status = PayloadDecoders([command_rule("import sys; sys.stderr.write('bad frame\\n'); sys.exit(3)")])
    result = await status.decode_async("t", b"x")
    assert result.error == f"command: {sys.executable} exited with status 3: bad frame"
    slow = PayloadDecoders([command_rule("import time; time.sleep(30)", timeout=0.5)])
    assert "did not finish within 0.5 s (killed)" in (await slow.decode_async("t", b"x")).error  # type: ignore[operator]
    chatty = PayloadDecoders(
        [command_rule("import sys\nwhile True: sys.stdout.write('x' * 65536)")],
        limits=DecodeLimits(max_command_output=100_000),
    )
    assert "wrote more than 97.7 KiB (killed)" in (await chatty.decode_async("t", b"x")).error  # type: ignore[operator]
    missing = PayloadDecoders([DecoderRule("#", "command", command=("/nonexistent/decoder",))])
    assert "cannot run /nonexistent/decoder" in (await missing.decode_async("t", b"x")).error  # type: ignore[operator]


async def test_gzip_then_command() -> None:
    decoders = PayloadDecoders([DecoderRule("#", "gzip+command", command=(sys.executable, "-c",
                                "import sys; print(sys.stdin.read()[::-1])"))])  # fmt: skip
    assert (await decoders.decode_async("t", gzip.compress(b"abc"))).text.strip() == "cba"


# -------------------------------------------------------------------------------------------------- publish side


def test_payload_encodings(tmp_path: Path) -> None:
    assert encode_payload_text("0x01 0xff", "hex") == b"\x01\xff"
    assert encode_payload_text("01:ff:10", "hex") == b"\x01\xff\x10"
    assert encode_payload_text("AAH/", "base64") == b"\x00\x01\xff"
    assert encode_payload_text("AAH_", "base64") == b"\x00\x01\xff"
    assert cbor2.loads(encode_payload_text('{"a": [1, 2.5, null]}', "cbor")) == {"a": [1, 2.5, None]}
    assert msgpack.unpackb(encode_payload_text('{"a": true}', "msgpack")) == {"a": True}
    (tmp_path / "frame.bin").write_bytes(b"\x00\x01")
    assert encode_payload_text(str(tmp_path / "frame.bin"), "file") == b"\x00\x01"
    assert encode_payload_text("é", "text") == "é".encode()


@pytest.mark.parametrize(
    ("text", "encoding", "words"),
    [("0g", "hex", "not a hex digit"), ("abc", "hex", "odd number"), ("a$b=", "base64", "not base64"),
     ("{", "cbor", "not JSON"), ("[" * 100_000, "msgpack", "nested too deeply"),
     ("18446744073709551616", "msgpack", "MessagePack"), ("/nonexistent/file", "file", "cannot read"),
     ("x", "utf-16", "unknown payload encoding")],
)  # fmt: skip
def test_payload_encoding_errors(text: str, encoding: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        encode_payload_text(text, encoding)


async def test_one_command_run_for_requests_of_the_same_payload(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    script = f"import sys; open({str(runs)!r}, 'a').write('x'); print(len(sys.stdin.read()))"
    decoders = PayloadDecoders([command_rule(script)])
    first, second = await asyncio.gather(decoders.decode_async("t", b"abc"), decoders.decode_async("t", b"abc"))
    assert first is second and first.fields == {"": 3.0}
    assert runs.read_text() == "x"
    assert decoders.decode("t", b"abc") is first


def test_candidates_for_decode_as() -> None:
    decoders = PayloadDecoders()
    names = [name for name, _ in decoders.candidates("t", cbor2.dumps({"a": [1, 2]}))]
    assert "cbor" in names and "hex" in names and "json" not in names
    names = [name for name, _ in decoders.candidates("t", gzip.compress(b'{"a": 1}'))]
    assert "gzip" in names and "json" not in names and "text" not in names
    assert [name for name, _ in decoders.candidates("t", bytes(300 * 1024))] == ["hex"]
