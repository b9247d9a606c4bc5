"""The decoders one by one, on payloads made by independent encoders (the standard library, cbor2, msgpack,
protobuf from a schema written in the test), and on malformed payloads: cut short, of the wrong type, bombs."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from pathlib import Path

import cbor2
import msgpack
import pytest
from google.protobuf import descriptor_pb2, text_format

from mqttchat.explorer.decoders import DecodeContext, DecodeLimits, DecoderRule, Pipeline
from mqttchat.explorer.decoders.result import DecodeResult


def run(decoder: str, payload: bytes, limits: DecodeLimits | None = None, **options: object) -> DecodeResult:
    rule = DecoderRule("#", decoder, **options)  # type: ignore[arg-type]
    assert rule.problems() == []
    return Pipeline(rule).run(payload, DecodeContext("t", limits=limits or DecodeLimits()))


def assert_fails(result: DecodeResult, *words: str) -> None:
    assert not result.ok and result.root is None and result.error
    for word in words:
        assert word in result.error
    assert result.text.startswith(result.error)


# ---------------------------------------------------------------------------------------------------- JSON, text


def test_json_tree_text_and_fields() -> None:
    result = run("json", json.dumps({"t": 21.5, "ok": True, "x": [1, {"y": -2}], "s": "é"}).encode())
    assert result.ok and result.format == "json"
    assert result.text == json.dumps({"t": 21.5, "ok": True, "x": [1, {"y": -2}], "s": "é"}, indent=2,
                                     ensure_ascii=False)  # fmt: skip
    assert result.fields == {"t": 21.5, "ok": 1.0, "x.0": 1.0, "x.1.y": -2.0}
    assert result.number("x.1.y") == -2.0
    assert result.root is not None and [child.name for child in result.root.children or ()] == ["t", "ok", "x", "s"]
    assert result.to_json() == {"t": 21.5, "ok": True, "x": [1, {"y": -2}], "s": "é"}


def test_json_scalar_is_at_the_empty_path() -> None:
    assert run("json", b"21.5").fields == {"": 21.5}


@pytest.mark.parametrize(
    ("payload", "words"),
    [(b'{"a": ', ["not JSON", "line 1"]), (b"\xff{}", ["not UTF-8", "byte 0"]), (b"[" * 100_000, ["nested"])],
)
def test_json_malformed(payload: bytes, words: list[str]) -> None:
    assert_fails(run("json", payload), *words)


def test_text_by_hand_replaces_bad_bytes_and_says_so() -> None:
    result = run("text", b"caf\xe9 ok")
    assert result.ok and result.text == "caf\ufffd ok"
    assert result.notes == ("1 bytes that are not UTF-8 shown as \ufffd",)


def test_hex() -> None:
    result = run("hex", b"\x00\xffAB")
    assert result.ok and result.format == "binary" and "00 ff 41 42" in result.text


# ------------------------------------------------------------------------------------------- compression, base64


@pytest.mark.parametrize(
    ("decoder", "compress"),
    [("gzip", gzip.compress), ("zlib", zlib.compress),
     ("deflate", lambda data: zlib.compress(data, wbits=-15))],
)  # fmt: skip
def test_decompression_then_json(decoder: str, compress: object) -> None:
    payload = compress(b'{"v": 3}')  # type: ignore[operator]
    result = run(f"{decoder}+json", payload)
    assert result.ok and result.decoder == f"{decoder}+json" and result.fields == {"v": 3.0}
    # A transform alone is finished automatically.
    alone = run(decoder, payload)
    assert alone.ok and alone.format == "json" and alone.decoder == f"{decoder}+json"


def test_gzip_members_in_a_row_are_one_stream() -> None:
    assert run("gzip+text", gzip.compress(b"ab") + gzip.compress(b"cd")).text == "abcd"


@pytest.mark.parametrize(
    ("decoder", "compress"),
    [("gzip", gzip.compress), ("zlib", zlib.compress),
     ("deflate", lambda data: zlib.compress(data, wbits=-15))],
)  # fmt: skip
def test_decompression_bomb_stops_at_the_limit(decoder: str, compress: object) -> None:
    bomb = compress(bytes(64 * 1024 * 1024))  # type: ignore[operator]
    assert len(bomb) < 100_000
    result = run(decoder, bomb, DecodeLimits(max_output=1024 * 1024))
    assert_fails(result, "more than 1.0 MiB")


def test_truncated_and_garbled_compression() -> None:
    assert_fails(run("gzip", gzip.compress(b"hello" * 100)[:-6]), "cut short")
    assert_fails(run("gzip", b"not gzip"), "not gzip")
    assert_fails(run("zlib", b"\x78\x9c\xff\xff"), "zlib")
    assert_fails(run("gzip", gzip.compress(b"x") + b"junk"), "follow")


def test_base64_variants() -> None:
    data = bytes(range(256))
    assert run("base64+hex", base64.b64encode(data)).root.value == data  # type: ignore[union-attr]
    assert run("base64+hex", base64.urlsafe_b64encode(data).rstrip(b"=")).root.value == data  # type: ignore[union-attr]
    wrapped = b"\n".join(base64.b64encode(data)[i : i + 60] for i in range(0, 344, 60))
    assert run("base64+hex", wrapped).root.value == data  # type: ignore[union-attr]
    assert_fails(run("base64", b"abc!"), "not base64", "0x21")
    assert_fails(run("base64", b"ab=c"), "padding")
    assert_fails(run("base64", b"abcde"), "length")


# -------------------------------------------------------------------------------------------------- CBOR, msgpack


def test_cbor_from_cbor2() -> None:
    value = {"temp": 21.5, "tags": ["a", "b"], "raw": b"\x01\x02", "n": None, "big": 2**70, 7: "int key"}
    result = run("cbor", cbor2.dumps(value))
    assert result.ok and result.format == "cbor"
    assert result.fields["temp"] == 21.5 and result.fields["big"] == float(2**70)
    assert "h'0102'" in result.text and '"int key"' in result.text
    assert result.to_json() == {"temp": 21.5, "tags": ["a", "b"], "raw": "0102", "n": None, "big": 2**70,
                                "7": "int key"}  # fmt: skip


def test_cbor_tags_sequences_and_cycles() -> None:
    tagged = run("cbor", cbor2.dumps(cbor2.CBORTag(40000, [1, 2])))
    assert tagged.ok and tagged.root is not None and tagged.root.kind == "tag 40000"
    sequence = run("cbor", cbor2.dumps(1) + cbor2.dumps("two"))
    assert sequence.ok and sequence.notes[0] == "a sequence of 2 items" and sequence.to_json() == [1, "two"]
    # A shared reference to an array inside itself (tags 28 and 29): shown, not followed for ever.
    cyclic = run("cbor", bytes.fromhex("d81c81d81d00"))
    assert cyclic.ok and "<cycle>" in cyclic.text


@pytest.mark.parametrize(
    ("payload", "words"),
    [(cbor2.dumps({"a": [1, 2, 3]})[:-1], ["not CBOR"]),
     (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", ["not CBOR"]),  # an array of 2**64-1 items in 9 bytes
     (b"\x5b\x00\x00\x00\xff\xff\xff\xff\xff", ["not CBOR"]),  # a 1 TiB byte string
     (b"\x81" * 10_000, ["not CBOR", "depth"]),
     (b"\x62\xff\xfe", ["not CBOR"]),
     (b"", ["empty"])],
)  # fmt: skip
def test_cbor_malformed(payload: bytes, words: list[str]) -> None:
    assert_fails(run("cbor", payload), *words)


def _colliding_cbor_map(count: int) -> bytes:
    """A CBOR map whose keys are bignums that all have the same hash in Python (multiples of 2**61 - 1)."""
    modulus = (1 << 61) - 1
    items = b"".join(b"\xc2\x4a" + (k * modulus).to_bytes(10, "big") + b"\x00" for k in range(1, count + 1))
    return b"\xb9" + count.to_bytes(2, "big") + items


def test_cbor_hash_flooding_keys_refused_beyond_the_limit() -> None:
    small = _colliding_cbor_map(100)
    assert run("cbor", small).ok
    large = _colliding_cbor_map(6_000)
    assert len(large) > DecodeLimits().max_relaxed_keys_payload
    assert_fails(run("cbor", large), "keys other than text or bytes", "16.0 KiB")


def test_msgpack_from_msgpack() -> None:
    value = {"v": [1, 2.5, None, True], "b": b"\x00", "s": "é", "ts": msgpack.Timestamp(1_700_000_000, 5)}
    result = run("msgpack", msgpack.packb(value, datetime=False))
    assert result.ok and result.format == "msgpack"
    assert result.fields == {"v.0": 1.0, "v.1": 2.5, "v.3": 1.0}
    assert "2023-11-14T22:13:20" in result.text
    ext = run("msgpack", msgpack.packb(msgpack.ExtType(5, b"ab")))
    assert ext.root is not None and ext.root.kind == "ext 5" and ext.root.value == b"ab"
    int_keys = run("msgpack", msgpack.packb({1: "a", 2: "b"}))
    assert int_keys.ok and int_keys.to_json() == {"1": "a", "2": "b"}
    assert run("msgpack", msgpack.packb(1) + msgpack.packb(2)).to_json() == [1, 2]


@pytest.mark.parametrize(
    ("payload", "words"),
    [(msgpack.packb({"a": [1, 2, 3]})[:-1], ["cut short"]),
     (b"\xdd\xff\xff\xff\xff", ["exceeds"]),  # an array of 4 billion items in 5 bytes
     (b"\xc6\xff\xff\xff\xff", ["cut short"]),  # a 4 GiB bin
     (b"\xc1", ["not MessagePack"]),
     (b"\x91" * 100_000, ["not MessagePack"]),
     (msgpack.packb({(1, 2): 3}, use_bin_type=True), ["MessagePack"])],
)  # fmt: skip
def test_msgpack_malformed(payload: bytes, words: list[str]) -> None:
    assert_fails(run("msgpack", payload), *words)


def test_msgpack_int_keys_refused_beyond_the_limit() -> None:
    large = msgpack.packb({i: i for i in range(10_000)})
    assert_fails(run("msgpack", large), "keys other than text or bytes")


# -------------------------------------------------------------------------------------------------------- struct


def test_struct_with_names_and_records() -> None:
    frame = struct.pack(">IfH", 7, 351.5, 230)
    result = run("struct", frame, struct=">IfH", fields=("counter", "watts", "volts"))
    assert result.ok and result.fields == {"counter": 7.0, "watts": 351.5, "volts": 230.0}
    assert "watts: 351.5" in result.text
    rows = run("struct", frame * 3, struct=">IfH")
    assert rows.ok and rows.fields["2.1"] == 351.5 and len(rows.root.children or ()) == 3  # type: ignore[union-attr]
    assert_fails(run("struct", frame[:-1], struct=">IfH"), "9 bytes", "needs 10")


def test_struct_rule_problems() -> None:
    assert DecoderRule("#", "struct", struct="<q!").problems()[0][0] == "struct"
    assert DecoderRule("#", "struct", struct="<hh", fields=("a",)).problems() == [
        ("fields", "the format has 2 values but 1 field names are given")
    ]
    assert DecoderRule("#", "struct").problems() == [("struct", "the struct decoder needs it")]
    assert DecoderRule("#", "json", struct="<h").problems() == [("struct", "is only used with the struct decoder")]


# ------------------------------------------------------------------------------------------------------ protobuf

#: A schema written as the FileDescriptorSet that ``protoc --descriptor_set_out`` would write for:
#:   package acme; enum Unit { CELSIUS = 0; KELVIN = 1; }
#:   message Reading { string sensor = 1; double value = 2; Unit unit = 3; repeated int32 history = 4;
#:                     Reading previous = 5; map<string, int64> counters = 6; bytes raw = 7; }
_DESCRIPTOR_SET = """
file {
  name: "acme/reading.proto" package: "acme" syntax: "proto3"
  enum_type { name: "Unit" value { name: "CELSIUS" number: 0 } value { name: "KELVIN" number: 1 } }
  message_type {
    name: "Reading"
    field { name: "sensor" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "sensor" }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_DOUBLE json_name: "value" }
    field { name: "unit" number: 3 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".acme.Unit" json_name: "unit" }
    field { name: "history" number: 4 label: LABEL_REPEATED type: TYPE_INT32 json_name: "history" }
    field { name: "previous" number: 5 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".acme.Reading" }
    field { name: "counters" number: 6 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".acme.Reading.CountersEntry" json_name: "counters" }
    field { name: "raw" number: 7 label: LABEL_OPTIONAL type: TYPE_BYTES json_name: "raw" }
    nested_type {
      name: "CountersEntry"
      field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
      field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT64 }
      options { map_entry: true }
    }
  }
}
"""


@pytest.fixture
def descriptor_set(tmp_path: Path) -> Path:
    files = text_format.Parse(_DESCRIPTOR_SET, descriptor_pb2.FileDescriptorSet())
    path = tmp_path / "reading.pb"
    path.write_bytes(files.SerializeToString())
    return path


def _reading_bytes() -> bytes:
    """Reading{sensor: "t1", value: 21.5, unit: KELVIN, history: [1, -2], previous: {value: 20},
    counters: {"a": 3}, raw: 00 ff} written field by field in the protobuf wire format."""
    previous = b"\x11" + struct.pack("<d", 20.0)
    entry = b"\x0a\x01a\x10\x03"
    return (
        b"\x0a\x02t1" + b"\x11" + struct.pack("<d", 21.5) + b"\x18\x01"
        + b"\x22\x0b\x01" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"
        + b"\x2a" + bytes([len(previous)]) + previous
        + b"\x32" + bytes([len(entry)]) + entry + b"\x3a\x02\x00\xff"
    )  # fmt: skip


def test_protobuf_with_a_descriptor_set(descriptor_set: Path) -> None:
    result = run("protobuf", _reading_bytes(), descriptor_set=str(descriptor_set), message="acme.Reading")
    assert result.ok, result.error
    assert result.root is not None and result.root.kind == "acme.Reading"
    assert result.fields == {"value": 21.5, "unit": 1.0, "history.0": 1.0, "history.1": -2.0,
                             "previous.value": 20.0, "counters.a": 3.0}  # fmt: skip
    assert "unit: 1  /KELVIN/" in result.text
    assert result.to_json()["raw"] == "00ff"  # type: ignore[index]


def test_protobuf_schema_errors(descriptor_set: Path, tmp_path: Path) -> None:
    wrong_type = run("protobuf", b"\x0a\x02t1", descriptor_set=str(descriptor_set), message="acme.Nope")
    assert_fails(wrong_type, "no message type 'acme.Nope'", "acme.Reading")
    missing = run("protobuf", b"", descriptor_set=str(tmp_path / "missing.pb"), message="acme.Reading")
    assert_fails(missing, "cannot read the descriptor set")
    (tmp_path / "junk.pb").write_bytes(b"\xff\xff")
    assert_fails(run("protobuf", b"", descriptor_set=str(tmp_path / "junk.pb"), message="a.B"), "not a descriptor")
    corrupt = run("protobuf", b"\x0a\x05t1", descriptor_set=str(descriptor_set), message="acme.Reading")
    assert_fails(corrupt, "not a acme.Reading")


def test_protobuf_raw_like_decode_raw() -> None:
    result = run("protobuf", _reading_bytes())
    assert result.ok
    lines = result.text.splitlines()
    assert lines[0] == '1: "t1"  (string)'
    assert lines[1].startswith("2: ") and "double 21.5" in lines[1]
    assert "3: 1  (varint)" in lines
    assert "5:  (message)" in lines  # the nested Reading, guessed
    assert result.fields["3"] == 1.0


@pytest.mark.parametrize("payload", [b"\x0a\x05ab", b"\x08", b"\x0c", b"\x07", b"\xff" * 11])
def test_protobuf_raw_malformed(payload: bytes) -> None:
    assert_fails(run("protobuf", payload), "not protobuf")
