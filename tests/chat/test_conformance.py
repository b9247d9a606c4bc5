"""The protocol's test vectors (docs/chat-conformance.json) run against mqttchat's reader, the chat model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mqttchat.chat.model import ChatModel
from mqttchat.chat.protocol import parse_topic

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "chat-conformance.json"
NOW = 1_764_345_700.0
OUTCOMES = {"shown", "dropped", "duplicate", "ignored", "presence", "cleared", "typing"}


def load() -> dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def expand(value: Any) -> Any:
    """``{"$repeat": S, "times": N}`` anywhere in a payload is S repeated N times."""
    if isinstance(value, dict):
        if set(value) == {"$repeat", "times"}:
            return value["$repeat"] * value["times"]
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    return value


def payload_of(step: dict[str, Any], vectors: dict[str, Any]) -> bytes:
    forms = [key for key in ("payload", "envelope", "presence", "payload_text", "payload_hex") if key in step]
    assert len(forms) == 1, f"a step gives its payload in one form: {forms}"
    form = forms[0]
    if form == "payload_text":
        return str(expand(step[form])).encode()
    if form == "payload_hex":
        return bytes.fromhex(step[form].replace(" ", ""))
    if form == "payload":
        value = expand(step[form])
    else:
        value = dict(vectors[f"base_{form}"])
        for key, item in expand(step[form]).items():
            if item is None:
                value.pop(key, None)
            else:
                value[key] = item
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def outcome(model: ChatModel, topic: str, payload: bytes) -> dict[str, Any]:
    """What the reader did with one message, in the vectors' terms."""
    dropped, duplicates = dict(model.dropped), model.duplicates
    parsed = parse_topic(topic)
    room = model.rooms.get(parsed.room or "")
    typing_before = dict(room.typing) if room is not None else {}
    shown = model.ingest(topic, payload, NOW)
    if shown is not None:
        envelope = shown.envelope
        return {"shown": {"room": shown.room, "sender": shown.sender, "nick": envelope.nick, "text": envelope.text,
                          "kind": envelope.kind, "gap": shown.gap_before}}  # fmt: skip
    if model.duplicates != duplicates:
        return {"duplicate": True}
    if model.dropped != dropped:
        (reason,) = [key for key in model.dropped if model.dropped[key] != dropped.get(key, 0)]
        return {"dropped": reason}
    if parsed.kind == "presence":
        assert parsed.user is not None
        presence = model.presence.get(parsed.user)
        if presence is None:
            return {"cleared": True}
        return {"presence": {"status": presence.status, "nick": presence.nick, "rooms": list(presence.rooms),
                             "online": presence.online}}  # fmt: skip
    changed = room is not None and (room.typing != typing_before or parsed.user not in typing_before)
    if parsed.kind == "typing" and room is not None and parsed.user in room.typing and changed:
        return {"typing": parsed.user in room.typing_now(NOW)}
    return {"ignored": True}


def matches(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    (kind,) = expected
    if kind not in got:
        return False
    want = expected[kind]
    if not isinstance(want, dict):
        return bool(want == got[kind])
    have = dict(got[kind])
    text = have.get("text", "")
    have["text_length"] = len(text)
    for key, value in want.items():
        if key == "text_ends_with":
            if not text.endswith(value):
                return False
        elif have.get(key) != value:
            return False
    return True


CASES = load()["cases"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_vector(case: dict[str, Any]) -> None:
    vectors = load()
    model = ChatModel("me")
    model.room("lobby")
    for number, step in enumerate(case["steps"], 1):
        (kind,) = step["expect"]
        assert kind in OUTCOMES
        got = outcome(model, step["topic"], payload_of(step, vectors))
        assert matches(step["expect"], got), f"step {number}: expected {step['expect']}, the reader did {got}"


def test_every_reason_has_a_vector() -> None:
    """Each reason a reader can drop a payload for is exercised by at least one vector (and only those)."""
    reasons = {step["expect"]["dropped"] for case in CASES for step in case["steps"] if "dropped" in step["expect"]}
    assert reasons == {"json", "object", "size", "version", "id", "session", "seq", "ts", "nick", "text", "kind",
                       "topic", "status", "rooms", "client", "typing"}  # fmt: skip
