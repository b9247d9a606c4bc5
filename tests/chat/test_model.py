"""The chat wire protocol and model, without a broker: order, duplicates, gaps, catch-up, presence, history."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttchat.chat import protocol as p
from mqttchat.chat.history import History
from mqttchat.chat.model import ChatModel, Delivery
from mqttchat.untrusted import printable


def msg(sender: p.Sender, text: str, ts: float = 100.0) -> bytes:
    return sender.envelope(text, now=ts).to_json()


def test_topics_round_trip_and_names() -> None:
    assert p.parse_topic(p.room_messages("lobby", "alice")) == p.Parsed("message", "lobby", "alice")
    assert p.parse_topic(p.room_typing("lobby", "bob")) == p.Parsed("typing", "lobby", "bob")
    assert p.parse_topic(p.direct("bob", "alice")) == p.Parsed("direct", None, "alice", "bob")
    assert p.parse_topic(p.presence("alice")) == p.Parsed("presence", None, "alice")
    assert p.parse_topic("home/kitchen").kind == "other"
    assert p.name_problem("lobby") is None
    for bad in ("", "a/b", "a+", "#", "$sys", " padded", "x" * 65):
        assert p.name_problem(bad) is not None
    assert p.subscriptions("alice", ["lobby"]) == ["mqttchat/v1/rooms/lobby/#", "mqttchat/v1/direct/alice/+",
                                                   "mqttchat/v1/presence/+"]  # fmt: skip


def test_envelope_round_trip_and_errors() -> None:
    sender = p.Sender("Alice")
    envelope = sender.envelope("hello *world*", now=12.5)
    decoded = p.decode_envelope(envelope.to_json())
    assert decoded == envelope and decoded.seq == 1
    assert ("seq", "1") in envelope.properties().user_property
    assert envelope.properties().content_type == p.CONTENT_TYPE
    # Every rule has its vectors in docs/chat-conformance.json (tests/chat/test_conformance.py); here, what the
    # error carries.
    for bad, reason in ((b"nope", "json"), (b"[1]", "object"), (b'{"v": 2}', "version"),
                        (b'{"v": 1, "id": "x"}', "session"),
                        (b'{"v":1,"id":"x","session":"s","seq":0,"ts":1,"nick":"a","text":"b"}', "seq")):  # fmt: skip
        with pytest.raises(p.EnvelopeError) as caught:
            p.decode_envelope(bad)
        assert caught.value.reason == reason and caught.value.id is None
    with pytest.raises(p.EnvelopeError) as caught:
        p.decode_envelope(b'{"v":1,"id":"x","session":"s","seq":3,"ts":1764345600123,"nick":"a","text":"b"}')
    assert (caught.value.reason, caught.value.id, caught.value.session, caught.value.seq) == ("ts", "x", "s", 3)
    assert "Date.now()/1000" in caught.value.detail


def test_order_duplicates_and_gaps() -> None:
    model = ChatModel("me")
    model.room("lobby")
    alice = p.Sender("Alice")
    payloads = [msg(alice, str(i)) for i in range(1, 6)]
    topic = p.room_messages("lobby", "alice")
    for payload in payloads[:2]:
        model.ingest(topic, payload, 1.0)
    model.ingest(topic, payloads[1], 2.0)  # a QoS 1 redelivery: dropped by id
    model.ingest(topic, payloads[4], 3.0)  # 3 and 4 never arrive
    room = model.rooms["lobby"]
    assert [m.text for m in room.messages] == ["1", "2", "5"]
    assert [m.gap_before for m in room.messages] == [0, 0, 2]
    assert model.duplicates == 1 and model.gaps == 2
    assert room.members == {"alice"}
    bob = p.Sender("Bob")  # another sender's numbering is independent
    model.ingest(p.room_messages("lobby", "bob"), msg(bob, "hi"), 4.0)
    assert room.messages[-1].gap_before == 0
    restarted = p.Sender("Alice")  # a new session of alice starts again at 1: not a gap
    model.ingest(topic, msg(restarted, "back"), 5.0)
    assert room.messages[-1].gap_before == 0


def test_sequence_numbers_count_per_room() -> None:
    """A reader of one room must not see a gap for what the sender said in rooms the reader is not in."""
    model = ChatModel("me")
    model.room("lobby")
    alice = p.Sender("Alice")
    model.ingest(p.room_messages("lobby", "alice"), alice.envelope("1", room="lobby").to_json(), 1.0)
    for i in range(3):
        alice.envelope(f"elsewhere {i}", room="dev")  # published to dev, which this reader does not follow
    model.ingest(p.room_messages("lobby", "alice"), alice.envelope("2", room="lobby").to_json(), 2.0)
    assert [m.gap_before for m in model.rooms["lobby"].messages] == [0, 0] and model.gaps == 0
    alice.envelope("lost", room="lobby")
    model.ingest(p.room_messages("lobby", "alice"), alice.envelope("4", room="lobby").to_json(), 3.0)
    assert model.rooms["lobby"].messages[-1].gap_before == 1


def test_catch_up_is_marked_away_and_own_messages_have_delivery_states() -> None:
    model = ChatModel("me")
    model.room("lobby")
    model.connected_at = 1000.0
    alice = p.Sender("Alice")
    model.ingest(p.room_messages("lobby", "alice"), msg(alice, "while you slept", ts=500.0), 1000.2)
    model.ingest(p.room_messages("lobby", "alice"), msg(alice, "live", ts=1001.0), 1001.0)
    assert [m.away for m in model.rooms["lobby"].messages] == [True, False]
    me = p.Sender("Me")
    envelope = me.envelope("mine", now=1002.0)
    own = model.add_own("lobby", envelope, 1002.0)
    assert own.delivery is Delivery.SENDING
    model.ingest(p.room_messages("lobby", "me"), envelope.to_json(), 1002.1)  # the broker echoes it back
    assert len(model.rooms["lobby"].messages) == 3
    model.delivered(envelope.id, True)
    assert own.delivery is Delivery.ACKED
    failed = model.add_own("lobby", me.envelope("refused"), 1003.0)
    model.delivered(failed.envelope.id, False, "Not authorized")
    assert failed.delivery is Delivery.FAILED and failed.error == "Not authorized"


def test_unread_counts_presence_typing_and_direct_messages() -> None:
    model = ChatModel("me")
    model.room("lobby")
    model.room("dev")
    model.select("lobby")
    alice = p.Sender("Alice")
    model.ingest(p.room_messages("dev", "alice"), msg(alice, "x"), 1.0)
    assert model.rooms["dev"].unread == 1 and model.rooms["lobby"].unread == 0
    model.select("dev")
    assert model.rooms["dev"].unread == 0
    model.ingest(p.presence("alice"), p.presence_payload("online", "Alice", ["lobby"], "mqttchat"), 2.0)
    model.ingest(p.presence("bob"), p.presence_payload("offline", "Bob", ["lobby"], "mqttchat"), 2.0)
    assert model.members("lobby") == [("alice", "online"), ("bob", "offline")]
    model.ingest(p.presence("bob"), b"", 3.0)  # cleared
    assert "bob" not in model.presence
    model.ingest(p.room_typing("lobby", "alice"), b'{"typing": true}', 10.0)
    assert model.rooms["lobby"].typing_now(12.0) == ["alice"]
    assert model.rooms["lobby"].typing_now(20.0) == []
    model.ingest(p.direct("me", "alice"), msg(alice, "psst"), 11.0)
    assert [m.text for m in model.rooms["@alice"].messages] == ["psst"]
    assert model.rooms["@alice"].kind == "direct"
    model.ingest(p.room_messages("lobby", "x"), b"garbage", 12.0)
    assert model.invalid == 1


def test_history_pages_and_search(tmp_path: Path) -> None:
    history = History(tmp_path / "chat.sqlite3")
    model = ChatModel("me")
    model.room("lobby")
    alice = p.Sender("Alice")
    for i in range(450):
        message = model.ingest(
            p.room_messages("lobby", "alice"), msg(alice, f"line {i} {'needle' if i % 100 == 7 else ''}"), float(i)
        )
        assert message is not None
        history.add(message)
    history.flush()
    newest = history.page("lobby")
    assert len(newest) == 200 and newest[-1].text.startswith("line 449") and newest[0].text.startswith("line 250")
    older = history.page("lobby", before=newest[0].received_at)
    assert older[-1].text.startswith("line 249") and len(older) == 200
    assert len(history.page("lobby", before=older[0].received_at)) == 50
    hits = history.search("needle")
    assert [m.text.split()[1] for m in hits] == ["407", "307", "207", "107", "7"]
    assert history.search("50%") == []  # LIKE wildcards in the query are literal
    assert history.rooms() == ["lobby"]
    history.close()
    again = History(tmp_path / "chat.sqlite3")
    assert len(again.page("lobby", limit=10)) == 10  # survives a restart
    again.close()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = ("v", "id", "seq", "session", "ts", "nick", "text", "kind", "status", "rooms", "client", "typing")
GOOD = {"v": 1, "id": "abc", "seq": 2, "session": "s", "ts": 1764345600.5, "nick": "Al", "text": "hi",
        "kind": "message", "status": "online", "rooms": ["lobby"], "client": "x", "typing": True}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["rooms/lobby/messages", "direct/me", "presence", "rooms/lobby/typing", "rooms/dev/messages"]),
    user=st.text(min_size=1, max_size=10).filter(lambda u: "/" not in u),
    fields=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | st.sampled_from(list(GOOD.values())), max_size=6),
    base=st.booleans(),
    raw=st.one_of(st.none(), st.binary(max_size=64)),
)
def test_no_payload_makes_the_reader_raise_and_what_it_shows_is_clean(
    kind: str, user: str, fields: dict[str, object], base: bool, raw: bytes | None
) -> None:
    """Any topic level and payload: the reader never raises; what it shows has a neutralised nick of at most 64
    characters, a neutralised text (line breaks kept), a ts within 1970-2100 and a known kind."""
    import json

    model = ChatModel("me")
    model.room("lobby")
    body = {**(GOOD if base else {}), **fields}
    payload = raw if raw is not None else json.dumps(body, allow_nan=True).encode()
    before = model.invalid
    shown = model.ingest(f"{p.PREFIX}/{kind}/{user}", payload, 1.0)
    if shown is None:
        return
    envelope = shown.envelope
    assert model.invalid == before
    assert len(envelope.nick) <= p.MAX_NAME and printable(envelope.nick) == envelope.nick  # nothing left to hide
    assert printable(envelope.text, keep="\n") == envelope.text and envelope.text
    assert p.TS_MIN <= envelope.ts < p.TS_MAX and envelope.kind in p.KINDS


def test_where_senders_stood_survives_a_restart(tmp_path: Path) -> None:
    """A reader that restarts takes each sender's last seq and the ids it has from its history: a message lost
    while it was not running shows as a gap, and a redelivery of one it has is a duplicate."""
    from mqttchat.chat.service import ChatService
    from mqttchat.client import MQTTClient

    alice = p.Sender("Alice")
    sent = [alice.envelope(f"m{i}", room="lobby", now=100.0 + i) for i in range(1, 6)]
    first = ChatService(MQTTClient("mqtt://127.0.0.1:1", client_id="me"), "me", ["lobby"],
                        History(tmp_path / "h.sqlite"))  # fmt: skip
    for envelope in sent[:3]:
        first.model.ingest(p.room_messages("lobby", "alice"), envelope.to_json(), 200.0)
    assert first.history is not None
    first.history.close()
    again = ChatService(MQTTClient("mqtt://127.0.0.1:1", client_id="me"), "me", [], History(tmp_path / "h.sqlite"))
    assert [m.text for m in again.model.rooms["lobby"].messages] == ["m1", "m2", "m3"]
    again.model.ingest(p.room_messages("lobby", "alice"), sent[2].to_json(), 300.0)  # redelivered
    assert again.model.duplicates == 1
    again.model.ingest(p.room_messages("lobby", "alice"), sent[4].to_json(), 301.0)  # m4 was lost
    assert again.model.rooms["lobby"].messages[-1].gap_before == 1 and again.model.gaps == 1
