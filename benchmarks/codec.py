"""PUBLISH encode and decode speed of the protocol core, beside gmqtt's codec when it is installed.

Run: ``python benchmarks/codec.py [--packets N]``. Each row encodes or decodes PUBLISH packets with a 64-byte
payload and a typical five-level topic, at QoS 0 and QoS 1, for MQTT 3.1.1 and 5.0. Times are CPU time
(``time.process_time``), best of five rounds. Decoding includes framing: packets arrive as a byte stream cut into
64 KiB reads, as from a socket. The issue's target is under 5 µs of CPU per packet for the codec.

gmqtt (the fastest Python client) has no standalone decoder: its row calls the client's PUBLISH handler on an
already-framed packet body with a no-op callback, which leaves out framing and acknowledgement, so the
comparison favours gmqtt.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from mqttchat.protocol import PacketReader, Publish

TOPIC = "site/building-7/floor-3/room-12/temperature"
PAYLOAD = bytes(range(64))
TARGET_US = 5.0


def cpu_per_call(fn: Callable[[int], None], count: int, rounds: int = 5) -> float:
    """Best CPU seconds per item over ``rounds`` runs of ``fn(count)``."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        start = time.process_time()
        fn(count)
        elapsed = time.process_time() - start
        gc.enable()
        best = min(best, elapsed / count)
    return best


def mqttchat_encode(version: int, qos: int) -> Callable[[int], None]:
    def run(count: int) -> None:
        for i in range(count):
            Publish(TOPIC, PAYLOAD, qos, packet_id=(i & 0xFFFF) or 1 if qos else None).encode(version)

    return run


def mqttchat_decode(version: int, qos: int) -> Callable[[int], None]:
    one = Publish(TOPIC, PAYLOAD, qos, packet_id=1 if qos else None).encode(version)

    def run(count: int) -> None:
        stream = one * count
        reader = PacketReader(version)
        decoded = 0
        for offset in range(0, len(stream), 65_536):
            reader.feed(stream[offset : offset + 65_536])
            for _ in reader:
                decoded += 1
        assert decoded == count, decoded

    return run


def gmqtt_codecs(version: int, qos: int) -> tuple[Callable[[int], None], Callable[[int], None]] | None:
    try:
        from gmqtt import Message
        from gmqtt.mqtt import handler as gmqtt_handler
        from gmqtt.mqtt.package import PublishPacket
    except ImportError:
        return None
    logging.getLogger("gmqtt").setLevel(logging.WARNING)

    class IdGenerator:
        def __init__(self) -> None:
            self.n = 0

        def next_id(self) -> int:
            self.n = self.n % 65_535 + 1
            return self.n

    class Protocol:
        proto_ver = version
        id_generator = IdGenerator()

    def encode(count: int) -> None:
        protocol = Protocol()
        for _ in range(count):
            PublishPacket.build_package(Message(TOPIC, PAYLOAD, qos=qos), protocol)

    class State:
        protocol_version = version

    h: Any = object.__new__(gmqtt_handler.MqttPackageHandler)
    h._logger = logging.getLogger("gmqtt.bench")
    h._connection_state = State()
    h._server_topics_aliases = {}
    h._on_message_callback = lambda *args: 0
    h._handle_qos_1_publish_packet = lambda *args: None  # acknowledgement left out
    wire = Publish(TOPIC, PAYLOAD, qos, packet_id=1 if qos else None).encode(version)
    body = wire[2:]  # remaining length < 128: one byte
    cmd = wire[0]

    def decode(count: int) -> None:
        handle = h._handle_publish_packet
        for _ in range(count):
            handle(cmd, body)

    return encode, decode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000, help="packets per round (default 200000)")
    args = parser.parse_args()
    n = args.packets

    print(f"PUBLISH codec, {len(PAYLOAD)}-byte payload, topic {TOPIC!r}, {n} packets a round, best of 5 (CPU time)")
    print()
    header = f"{'row':<22} {'mqttchat pkt/s':>15} {'µs/pkt':>8} {'gmqtt pkt/s':>13} {'µs/pkt':>8} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for version, label in ((4, "3.1.1"), (5, "5.0")):
        for qos in (0, 1):
            peers = gmqtt_codecs(version, qos)
            for op in ("encode", "decode"):
                ours = cpu_per_call(
                    mqttchat_encode(version, qos) if op == "encode" else mqttchat_decode(version, qos), n
                )
                worst = max(worst, ours)
                row = f"{op} v{label} QoS {qos}"
                line = f"{row:<22} {1 / ours:>15,.0f} {ours * 1e6:>8.2f}"
                if peers is not None:
                    theirs = cpu_per_call(peers[0] if op == "encode" else peers[1], n)
                    line += f" {1 / theirs:>13,.0f} {theirs * 1e6:>8.2f} {theirs / ours:>6.2f}x"
                else:
                    line += f" {'(not installed)':>30}"
                line += f"  {'ok' if ours * 1e6 < TARGET_US else 'MISSED'} (< {TARGET_US:.0f} µs)"
                print(line)
    print()
    print("ratio = gmqtt CPU per packet / mqttchat CPU per packet (above 1.00x: mqttchat is faster)")
    print(f"slowest mqttchat row: {worst * 1e6:.2f} µs per packet (target < {TARGET_US:.0f} µs)")
    return 0 if worst * 1e6 < TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
