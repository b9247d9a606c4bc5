"""``mqttchat sub --decode``: payloads built by the format libraries, decoded by sub in a subprocess, against
mosquitto; ``-F json`` gains ``decoder`` and ``decoded``; rules from the settings; bad chains refused."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

import cbor2
import msgpack

from mqttchat.explorer.decoders.sparkplug import BDSEQ, REBIRTH, DataType, SparkplugMetric, encode_payload
from tests.helpers.brokers import RunningBroker
from tests.helpers.cli import finish, mqttchat, pub, run


def start_sub(broker: RunningBroker, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``mqttchat sub`` once mosquitto has logged its SUBSCRIBE."""
    before = broker.log_text().count("Received SUBSCRIBE")
    proc = subprocess.Popen(
        mqttchat("sub", "-p", str(broker.port), *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    deadline = time.monotonic() + 15
    while broker.log_text().count("Received SUBSCRIBE") <= before:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"sub did not subscribe: {proc.stderr.read() if proc.stderr else b''!r}")
        time.sleep(0.05)
    return proc


def publish_file(broker: RunningBroker, tmp_path: Path, topic: str, payload: bytes, *args: str) -> None:
    path = tmp_path / f"payload-{abs(hash((topic, payload)))}.bin"
    path.write_bytes(payload)
    pub(broker, "-t", topic, "-f", str(path), "-q", "1", *args)


def plant(broker: RunningBroker, tmp_path: Path) -> None:
    """A Sparkplug birth and data by alias, gzip'd JSON, CBOR named by its content type, and text."""
    birth = [
        SparkplugMetric(BDSEQ, DataType.Int64, 0),
        SparkplugMetric(REBIRTH, DataType.Boolean, False),
        SparkplugMetric("Speed", DataType.Float, 1450.0, alias=10),
    ]
    publish_file(broker, tmp_path, "spBv1.0/G/NBIRTH/E", encode_payload(birth, timestamp=1, seq=0))
    data = [SparkplugMetric(None, DataType.Float, 1460.5, alias=10)]
    publish_file(broker, tmp_path, "spBv1.0/G/NDATA/E", encode_payload(data, timestamp=2, seq=1))
    publish_file(broker, tmp_path, "dev/solar", gzip.compress(b'{"power_w": 2100}'))
    publish_file(broker, tmp_path, "dev/charger", cbor2.dumps({"kw": 7.5}), "-D", "publish", "content-type",
                 "application/cbor")  # fmt: skip
    pub(broker, "-t", "dev/note", "-m", "plain words", "-q", "1")


def test_sub_decode_prints_each_payload_decoded(mosquitto: RunningBroker, tmp_path: Path) -> None:
    sub = start_sub(mosquitto, "-t", "spBv1.0/#", "-t", "dev/#", "-q", "1", "--decode", "-v", "-C", "5")
    plant(mosquitto, tmp_path)
    code, out, err = finish(sub)
    assert code == 0, err
    lines = out.decode().splitlines()
    assert lines[1] == 'spBv1.0/G/NDATA/E {"timestamp":2,"seq":1,"metrics":{"Speed":1460.5}}'  # named by alias
    assert lines[2:] == ['dev/solar {"power_w":2100}', 'dev/charger {"kw":7.5}', "dev/note plain words"]
    assert err == b""


def test_sub_decode_chain_and_failures(mosquitto: RunningBroker, tmp_path: Path) -> None:
    sub = start_sub(mosquitto, "-t", "m/#", "-q", "1", "--decode", "msgpack", "-C", "1")
    publish_file(mosquitto, tmp_path, "m/packed", msgpack.packb({"a": [1, 2.5, "x"]}))
    code, out, err = finish(sub)
    assert code == 0, err
    assert out.decode() == '{"a":[1,2.5,"x"]}\n'
    sub = start_sub(mosquitto, "-t", "j/#", "-q", "1", "--decode", "json", "-C", "1")
    pub(mosquitto, "-t", "j/text", "-m", "\x1b[2J not json", "-q", "1")
    code, out, err = finish(sub)
    assert code == 0
    # not JSON: printed as it came (to a pipe: the bytes are data), why on stderr, neutralised
    assert out == b"\x1b[2J not json\n"
    assert b"j/text: cannot decode (json)" in err and b"\x1b" not in err


def test_sub_decode_json_output_has_the_decoded_value_and_still_replays(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    from mqttchat.explorer.recording import load_recording

    sub = start_sub(mosquitto, "-t", "spBv1.0/#", "-t", "dev/#", "-q", "1", "--decode", "-F", "json", "-C", "5")
    plant(mosquitto, tmp_path)
    code, out, err = finish(sub)
    assert code == 0, err
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert records[1]["decoder"] == "sparkplug"
    assert records[1]["decoded"]["metrics"] == {"Speed": 1460.5}
    assert records[2]["decoder"] == "gzip+json" and records[2]["decoded"] == {"power_w": 2100}
    assert records[3]["decoded"] == {"kw": 7.5} and records[4]["decoded"] == "plain words"
    recording = tmp_path / "rec.jsonl"
    recording.write_bytes(out)
    assert [r.topic for r in load_recording(recording)][2:] == ["dev/solar", "dev/charger", "dev/note"]


def test_sub_decode_uses_the_settings_rules(mosquitto: RunningBroker, tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "mqttchat").mkdir(parents=True)
    (config / "mqttchat" / "settings.toml").write_text(
        '[[decoders]]\nfilter = "meters/+/raw"\ndecoder = "struct"\nstruct = "<hf"\nfields = ["id", "watts"]\n'
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    sub = start_sub(mosquitto, "-t", "meters/#", "-q", "1", "--decode", "-C", "1", "-F", "json", env=env)
    publish_file(mosquitto, tmp_path, "meters/7/raw", bytes.fromhex("0700") + bytes.fromhex("0000c841"))
    code, out, err = finish(sub)
    assert code == 0, err
    record = json.loads(out)
    assert record["decoder"] == "struct" and record["decoded"] == {"id": 7, "watts": 25.0}


def test_sub_decode_refuses_bad_chains_in_one_line() -> None:
    for chain, words in (("cbor+json", b"must come last"), ("jsn", b"did you mean 'json'"), ("struct", b"needs")):
        result = run("sub", "-t", "a", "--decode", chain, "-p", "1")
        assert result.returncode == 1, chain
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert b"Traceback" not in result.stderr


async def test_decoded_text_to_a_terminal_is_neutralised_and_keeps_line_breaks() -> None:
    from mqttchat.client import Message
    from mqttchat.commands.sub import render_decoded
    from mqttchat.commands.sub_decode import SubDecoder
    from mqttchat.commands.sub_format import Output

    decoder = SubDecoder("cbor")
    message = Message("t/\x1b]0;x\x07", cbor2.dumps({"k\x1b[2J": "v\u202e"}), received_at=1.0)
    result = await decoder.decode(message)
    assert result.ok and result.decoder == "cbor"
    shown = render_decoded(Output(None, verbose=True, terminal=True), decoder, message, result)
    assert b"\x1b" not in shown and "\u202e".encode() not in shown and b"\x07" not in shown
    assert "␛".encode() in shown
    text = Message("t", b"line one\nline two", received_at=1.0)
    decoder = SubDecoder("auto")
    shown = render_decoded(Output(None, terminal=True), decoder, text, await decoder.decode(text))
    assert shown == b"line one\nline two"  # a text's line breaks kept, as a payload's are
    escaped = Message("t", b"\x1b[2Jtext", received_at=1.0)  # not text to automatic decoding: its hex
    assert render_decoded(Output(None, terminal=True), decoder, escaped, await decoder.decode(escaped)) == (
        b"1b5b324a74657874"
    )
