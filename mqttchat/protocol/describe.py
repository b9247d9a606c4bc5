"""One-line, human-readable descriptions of packets, for debug output and the packet inspector."""

from __future__ import annotations

from mqttchat.protocol.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from mqttchat.protocol.properties import Properties
from mqttchat.protocol.reason_codes import reason_name

PREVIEW = 40


def preview(payload: bytes, limit: int = PREVIEW) -> str:
    """A short printable rendering of a payload: text when it decodes as UTF-8, hex otherwise."""
    try:
        text = payload[:limit].decode()
        shown = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    except UnicodeDecodeError:
        shown = payload[: limit // 2].hex(" ")
    return shown + ("…" if len(payload) > limit else "")


def describe_properties(props: Properties) -> str:
    if not props:
        return ""
    parts = []
    for name, value in props.as_dict().items():
        shown = preview(value, 16) if isinstance(value, bytes) else value
        parts.append(f"{name}={shown!r}" if isinstance(shown, str) else f"{name}={shown}")
    return " {" + ", ".join(parts) + "}"


def describe(packet: Packet) -> str:
    """``PUBLISH q1 r0 d0 id=5 'a/b' (12 bytes) {content_type='text'}`` and the like."""
    name = type(packet).__name__.upper()
    if isinstance(packet, Publish):
        pid = f" id={packet.packet_id}" if packet.packet_id is not None else ""
        return (
            f"PUBLISH q{packet.qos} r{int(packet.retain)} d{int(packet.dup)}{pid} {packet.topic!r} "
            f"({len(packet.payload)} bytes) {preview(packet.payload)!r}{describe_properties(packet.properties)}"
        )
    if isinstance(packet, Connect):
        flags = [f"v{packet.protocol_version}", f"id={packet.client_id!r}", f"clean={int(packet.clean_start)}",
                 f"keepalive={packet.keep_alive}"]  # fmt: skip
        if packet.username is not None:
            flags.append(f"user={packet.username!r} password={'set' if packet.password is not None else 'none'}")
        if packet.will is not None:
            flags.append(f"will={packet.will.topic!r} q{packet.will.qos} r{int(packet.will.retain)}")
        return f"CONNECT {' '.join(flags)}{describe_properties(packet.properties)}"
    if isinstance(packet, ConnAck):
        return (
            f"CONNACK session_present={int(packet.session_present)} "
            f"{reason_name(packet.reason_code, packet.TYPE)}{describe_properties(packet.properties)}"
        )
    if isinstance(packet, PubAck | PubRec | PubRel | PubComp):
        return f"{name} id={packet.packet_id} {reason_name(packet.reason_code, packet.TYPE)}" + describe_properties(
            packet.properties
        )
    if isinstance(packet, Subscribe):
        subs = ", ".join(
            f"{s.topic_filter!r} q{s.qos}"
            + (" nl" if s.no_local else "")
            + (" rap" if s.retain_as_published else "")
            + (f" rh{int(s.retain_handling)}" if s.retain_handling else "")
            for s in packet.subscriptions
        )
        return f"SUBSCRIBE id={packet.packet_id} {subs}{describe_properties(packet.properties)}"
    if isinstance(packet, SubAck | UnsubAck):
        codes = ", ".join(reason_name(c, packet.TYPE) for c in packet.reason_codes)
        return f"{name} id={packet.packet_id} [{codes}]{describe_properties(packet.properties)}"
    if isinstance(packet, Unsubscribe):
        return f"UNSUBSCRIBE id={packet.packet_id} {', '.join(map(repr, packet.topic_filters))}"
    if isinstance(packet, Disconnect | Auth):
        return f"{name} {reason_name(packet.reason_code, packet.TYPE)}{describe_properties(packet.properties)}"
    return name
