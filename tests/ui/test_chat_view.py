"""The chat view under Pilot: two app instances chatting through a broker, commands, rooms, scroll-back."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from mqttchat.broker.server import Broker
from mqttchat.chat.history import History
from mqttchat.chat.model import ChatMessage, Delivery
from mqttchat.chat.protocol import Envelope
from mqttchat.client import ClientOptions, parse_url
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.chat_layout import body_height, extra_lines
from mqttchat.ui.screens.chat import ChatScreen
from mqttchat.ui.widgets.chat_input import ChatInput
from mqttchat.ui.widgets.chat_log import ChatLog
from mqttchat.ui.widgets.chat_panels import MemberList, RoomList
from tests.helpers.brokers import broker_config
from tests.helpers.scenes import make_app
from tests.helpers.typist import spell, type_burst, type_slowly
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of

SIZE = (120, 36)


async def type_line(pilot: Pilot[Any], text: str) -> None:
    """Put ``text`` in the chat input (as pasted: a key press per character is slow under Pilot) and press Enter."""
    chat_input = pilot.app.screen.query_one("#chat-input", Input)
    chat_input.focus()
    chat_input.value = text
    await pilot.press("enter")


def log_text(app: MQTTChatApp) -> str:
    """What the chat log shows on screen now."""
    log = app.screen.query_one(ChatLog)
    return "\n".join(log.render_line(y).text.rstrip() for y in range(log.size.height))


def chat_app(url: str, nick: str, rooms: tuple[str, ...] = ("lobby",)) -> MQTTChatApp:
    """An app showing the chat as ``nick``; ``rooms`` are joined besides those open when it last ran (the data
    directory is the test's own)."""
    runtime = Runtime(ClientOptions(parse_url(url)), (("mqttchat/v1/#", 0),), embed_broker=False, chat_nick=nick,
                      chat_rooms=rooms)  # fmt: skip
    return MQTTChatApp(runtime, view="chat")


async def test_two_app_instances_chat(url: str) -> None:
    alice, bob = chat_app(url, "alice"), chat_app(url, "bob")
    async with alice.run_test(size=SIZE) as pa, bob.run_test(size=SIZE) as pb:
        await until(lambda: alice.runtime.chat is not None and alice.runtime.chat.client.connected, pilot=pa)
        await until(lambda: bob.runtime.chat is not None and bob.runtime.chat.client.connected, pilot=pb)
        # Presence: each sees the other online in the member list.
        await until(lambda: "● bob" in text_of(alice.screen.query_one(MemberList)), pilot=pa)
        await until(lambda: "● alice" in text_of(bob.screen.query_one(MemberList)), pilot=pb)

        await type_line(pa, "hello **bob**")
        await type_line(pa, "second line")
        await until(lambda: "second line" in log_text(bob), pilot=pb)
        shown = log_text(bob)
        assert shown.index("hello bob") < shown.index("second line")  # in the order sent, markers rendered
        await until(lambda: log_text(alice).count("✓") == 2, pilot=pa)  # both acknowledged by the broker (PUBACK)

        await type_line(pb, "hi @alice")
        await until(lambda: "hi @alice" in log_text(alice), pilot=pa)
        await type_line(pb, "/me waves")
        await until(lambda: "bob waves" in log_text(alice), pilot=pa)

        # A direct message opens a room on both sides, with an unread count for the reader.
        await type_line(pb, "/msg alice psst")
        rooms = alice.runtime.chat.model.rooms  # type: ignore[union-attr]
        await until(lambda: "@bob" in rooms, pilot=pa)
        assert "@alice" not in rooms
        await until(lambda: "bob 1" in str(alice.screen.query_one(RoomList).get_option_at_index(1).prompt), pilot=pa)
        await pa.press("alt+down")
        await until(lambda: "psst" in log_text(alice), pilot=pa)

        # Commands answer in the room; errors explain themselves.
        await type_line(pb, "/frobnicate")
        await until(lambda: "unknown command /frobnicate" in log_text(bob), pilot=pb)
        await type_line(pb, "/join dev")
        await until(lambda: bob.runtime.chat.model.current == "dev", pilot=pb)  # type: ignore[union-attr]
        assert "# dev" in str(bob.screen.query_one(RoomList).get_option_at_index(1).prompt)
        await until(lambda: "1 online, 1 member " in bob.screen._title().plain, pilot=pb)  # type: ignore[attr-defined]

        # Ctrl+T: the explorer shows the chat's own topics.
        await pb.press("ctrl+t")
        await until(lambda: not isinstance(bob.screen, ChatScreen), pilot=pb)
        await until(lambda: bob.runtime.tree.get("mqttchat/v1/presence/alice") is not None, pilot=pb)
        await pb.press("ctrl+t")
        await until(lambda: isinstance(bob.screen, ChatScreen), pilot=pb)

        # Quitting says "offline"; the other side sees it.
        await pb.press("ctrl+q")
        await until(lambda: "○ bob" in text_of(alice.screen.query_one(MemberList)), pilot=pa)


async def test_typing_indicator_and_input_recall() -> None:
    async with Broker(broker_config()) as broker:
        alice, bob = chat_app(broker.url, "alice"), chat_app(broker.url, "bob")
        async with alice.run_test(size=SIZE) as pa, bob.run_test(size=SIZE) as pb:
            await until(lambda: alice.runtime.chat is not None and alice.runtime.chat.client.connected, pilot=pa)
            await until(lambda: bob.runtime.chat is not None and bob.runtime.chat.client.connected, pilot=pb)
            await pb.press("h", "e", "l")
            await until(lambda: "bob is typing…" in text_of(alice.screen.query_one("#chat-typing")), pilot=pa)
            await pb.press("l", "o", "enter")
            await until(lambda: "hello" in log_text(alice), pilot=pa)
            await until(lambda: text_of(alice.screen.query_one("#chat-typing")).strip() == "", pilot=pa)
            await pb.press("up")
            assert bob.screen.query_one("#chat-input").value == "hello"  # type: ignore[attr-defined]
            await pb.press("down")
            assert bob.screen.query_one("#chat-input").value == ""  # type: ignore[attr-defined]


async def test_unreachable_broker_is_a_status_not_a_traceback() -> None:
    app = chat_app("mqtt://127.0.0.1:1", "alice")
    async with app.run_test(size=SIZE) as pilot:
        # The app retries: the chat's status line says when, and why the last attempt failed.
        await until(lambda: "connection refused" in text_of(app.screen.query_one("#chat-status")), pilot=pilot)
        await type_line(pilot, "anyone?")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)


def _message(room: str, user: str, i: int, at: float) -> ChatMessage:
    return ChatMessage(room, user, Envelope(f"{user}-{i}", i, "s", at, user, f"message number {i}"), at)


async def test_scrolling_back_loads_older_history_and_keeps_the_place(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite")
    start = time.time() - 100_000
    for i in range(1, 1001):
        history.add(_message("lobby", "bob", i, start + i))
    history.flush()
    app = make_app(view="chat")
    chat = app.runtime.chat
    lobby = chat.model.rooms["lobby"]
    lobby.messages.clear()
    lobby.history_exhausted = False
    chat.history = history
    assert chat.load_history("lobby") == 200  # the newest page
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.flush()
        await pilot.pause()
        assert "message number 1000" in log_text(app)
        log = app.screen.query_one(ChatLog)
        log.focus()
        await pilot.press("home")  # the top of the newest page: message 801
        app.flush()  # at the top: the page before is loaded in front, and the reader stays where they were
        await pilot.pause()
        assert len(lobby.messages) == 400
        assert "message number 801" in "".join(log_text(app).split("\n")[:2])
        for _ in range(10):
            if lobby.history_exhausted:
                break
            await pilot.press("home")
            app.flush()
            await pilot.pause()
        await pilot.press("home")
        assert len(lobby.messages) == 1000 and lobby.history_exhausted
        assert [m.envelope.seq for m in lobby.messages] == list(range(1, 1001))  # oldest first, nothing twice
        assert "message number 1\n" in log_text(app) + "\n"


async def test_a_room_of_100k_messages_renders_only_what_is_visible() -> None:
    app = make_app(view="chat")
    chat = app.runtime.chat
    lobby = chat.model.rooms["lobby"]
    now = time.time()
    lobby.messages[:] = [_message("lobby", f"user{i % 7}", i, now - 100_000 + i) for i in range(1, 100_001)]
    lobby.version += 1
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.flush()
        await pilot.pause()
        log = app.screen.query_one(ChatLog)
        # Shown at once: the newest messages are laid out first, the rest in the background.
        assert "message number 100000" in log_text(app)
        assert len(log._cache) <= 3 * log.size.height  # only blocks that were on screen were rendered
        async with asyncio.timeout(20):
            while log._pending is not None or log._layout is None or log._layout.base:
                app.flush()
                await pilot.pause(0.01)
        assert log.total_lines >= 100_000 and "message number 100000" in log_text(app)  # the place is kept
        log.focus()
        await pilot.press("home")
        assert "message number 1\n" in log_text(app) + "\n"
        await pilot.press("end")
        assert "message number 100000" in log_text(app)
        # New messages arrive while reading at the bottom: the view follows.
        chat.model._append(lobby, _message("lobby", "bob", 100_001, now))
        app.flush()
        await pilot.pause()
        assert "message number 100001" in log_text(app)
        # Scrolled up, the reader's place is kept when more arrive.
        await pilot.press("pageup", "pageup")
        before = log_text(app)
        chat.model._append(lobby, _message("lobby", "bob", 100_002, now))
        app.flush()
        await pilot.pause()
        assert log_text(app) == before
        # A resize lays the room out again in the background; the reader stays on the same messages.
        first_shown = before.split("\n")[0].split("│")[1].strip()
        await pilot.resize_terminal(SIZE[0] - 30, SIZE[1])
        await pilot.pause()
        app.flush()
        async with asyncio.timeout(20):
            while log._pending is not None or log._layout is None or log._layout.width != log.text_width:
                app.flush()
                await pilot.pause(0.01)
        assert first_shown in log_text(app).split("\n")[0]


async def test_own_message_states_follow_the_broker(tmp_path: Path) -> None:
    """A message refused by the broker's ACL is marked failed with the reason; others are acknowledged."""
    from mqttchat.broker.auth import PasswordFile
    from mqttchat.chat import CHAT_ACL

    passwords = PasswordFile()
    passwords.set_password("alice", "secret", iterations=1000)
    passwords.save(tmp_path / "passwd")
    acl = tmp_path / "acl"
    acl.write_text(CHAT_ACL.read_text() + "\nuser alice\ntopic deny mqttchat/v1/rooms/quiet/#\n")
    config = broker_config(allow_anonymous=False, password_file=tmp_path / "passwd", acl_file=acl)
    async with Broker(config) as broker:
        options = ClientOptions(parse_url(broker.url), username="alice", password="secret")
        runtime = Runtime(options, (), embed_broker=False, chat_nick="alice", chat_rooms=("lobby", "quiet"))
        app = MQTTChatApp(runtime, view="chat")
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: runtime.chat is not None and runtime.chat.client.connected, pilot=pilot)
            await until(lambda: runtime.chat.model.current == "lobby", pilot=pilot)  # type: ignore[union-attr]
            await type_line(pilot, "fine here")
            await until(lambda: "fine here ✓" in log_text(app), pilot=pilot)
            await type_line(pilot, "/join quiet")
            await type_line(pilot, "not here")
            await until(lambda: "✗ not delivered: Not authorized" in log_text(app), pilot=pilot)
            chat = runtime.chat
            assert chat is not None
            states = [m.delivery for m in chat.model.rooms["quiet"].messages if m.own]
            assert states == [Delivery.FAILED]


@pytest.mark.parametrize("width", [60, 80, 120, 200])
async def test_layout_heights_match_the_rendered_blocks(width: int) -> None:
    """The Line API depends on it: each message's precomputed height is the number of lines it renders to."""
    import random

    rng = random.Random(width)
    words = ["mqtt", "**bold**", "_it_", "`code`", "https://mqtt.org/x", "@alice", "日本語の文字", "a" * 70, "\n"]
    app = make_app(view="chat")
    chat = app.runtime.chat
    lobby = chat.model.rooms["lobby"]
    start = time.time() - 5 * 86_400
    messages = []
    for i in range(1, 400):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        kind = rng.choice(["message", "message", "action", "notice"])
        message = _message("lobby", rng.choice(["alice", "bob", "a-very-long-nickname"]), i, start + i * 1500)
        message.envelope = Envelope(message.envelope.id, i, "s", start + i * 1500, "n", text, kind)
        message.own = rng.random() < 0.2
        message.delivery = rng.choice(list(Delivery)) if message.own else Delivery.RECEIVED
        message.error = "Not authorized" if message.delivery is Delivery.FAILED else None
        message.away = 100 < i < 140
        message.gap_before = rng.choice([0, 0, 0, 2])
        messages.append(message)
    lobby.messages[:] = messages
    lobby.version += 1
    async with app.run_test(size=(width, 40)) as pilot:
        await pilot.pause()
        app.flush()
        await pilot.pause()
        log = app.screen.query_one(ChatLog)
        layout = log._layout
        assert layout is not None
        heights = layout.heights
        assert log.total_lines == sum(heights) > len(messages)
        for index in range(len(messages)):
            assert len(log._render_block(lobby.messages, index)) == heights[index], index
            assert heights[index] == extra_lines(lobby.messages, index) + body_height(messages[index], layout.width)


def texts(app: MQTTChatApp, room: str = "lobby") -> list[str]:
    """The texts of the messages (not local lines) in ``room`` of ``app``'s chat."""
    chat = app.runtime.chat
    assert chat is not None
    return [m.text for m in chat.model.rooms[room].messages if m.envelope.kind in ("message", "action")]


async def test_lines_typed_in_one_read_are_sent_once_each_in_order() -> None:
    """A fast typist's (or a paste's) keys arrive in one terminal read: every line is its own message, sent
    exactly once, in order; then the same typed at a person's pace."""
    async with Broker(broker_config()) as broker:
        alice, bob = chat_app(broker.url, "alice"), chat_app(broker.url, "bob")
        async with alice.run_test(size=SIZE) as pa, bob.run_test(size=SIZE) as pb:
            await until(lambda: alice.runtime.chat is not None and alice.runtime.chat.client.connected, pilot=pa)
            await until(lambda: bob.runtime.chat is not None and bob.runtime.chat.client.connected, pilot=pb)
            await type_burst(pa, *spell("burst one\nburst two\nburst three\n"))
            expected = ["burst one", "burst two", "burst three"]
            await until(lambda: len(texts(bob)) >= 3, pilot=pb)
            await until(lambda: log_text(alice).count("✓") == 3, pilot=pa)
            assert texts(alice) == expected and texts(bob) == expected
            assert alice.screen.query_one("#chat-input", Input).value == ""
            await type_slowly(pa, *spell("slow one\nslow two\n"))
            await until(lambda: len(texts(bob)) >= 5, pilot=pb)
            # Nothing more arrives: every line alice sent is acknowledged, and what the broker sent bob before
            # answering his ping has arrived.
            await until(lambda: log_text(alice).count("✓") == 5, pilot=pa)
            await bob.runtime.chat.client.ping()  # type: ignore[union-attr]
            assert texts(bob) == [*expected, "slow one", "slow two"] == texts(alice)
            # A burst that joins a room and speaks there: the line after the command goes where the command led.
            await type_burst(pa, *spell("/join dev\nin dev now\n"))
            await until(
                lambda: "dev" in alice.runtime.chat.model.rooms and texts(alice, "dev") == ["in dev now"], pilot=pa
            )  # type: ignore[union-attr]
            assert texts(alice)[-1] == "slow two"
            # A paste (bracketed): each line entered, the unfinished last one left in the input.
            chat_input = alice.screen.query_one(ChatInput)
            chat_input.post_message(events.Paste("pasted one\npasted two\nstill typing"))
            await until(lambda: texts(alice, "dev") == ["in dev now", "pasted one", "pasted two"], pilot=pa)
            assert chat_input.value == "still typing"


def subscribed(app: MQTTChatApp) -> set[str]:
    chat = app.runtime.chat
    assert chat is not None
    return set(chat.client.session.subscriptions)


async def test_leave_leaves_no_half_state() -> None:
    """After /leave the header, the input, the room list and the subscriptions agree; leaving the only room leaves
    the reader in no room (not in a room that no longer receives), until /join."""
    async with Broker(broker_config()) as broker:
        alice, bob = chat_app(broker.url, "alice"), chat_app(broker.url, "bob")
        async with alice.run_test(size=SIZE) as pa, bob.run_test(size=SIZE) as pb:
            await until(lambda: alice.runtime.chat is not None and alice.runtime.chat.client.connected, pilot=pa)
            await until(lambda: bob.runtime.chat is not None and bob.runtime.chat.client.connected, pilot=pb)
            chat = alice.runtime.chat
            assert chat is not None
            screen = alice.screen
            assert isinstance(screen, ChatScreen)
            chat_input = screen.query_one("#chat-input", Input)
            await type_line(pb, "before leaving")
            await until(lambda: texts(alice) == ["before leaving"], pilot=pa)
            # Leaving one of two rooms: back in the other, and nothing of dev left behind.
            await type_line(pa, "/join dev")
            await until(
                lambda: chat.model.current == "dev" and "mqttchat/v1/rooms/dev/#" in subscribed(alice), pilot=pa
            )
            await type_line(pa, "/leave")
            await until(lambda: chat.model.current == "lobby", pilot=pa)
            alice.flush()
            await pa.pause()
            assert "dev" not in chat.model.rooms and "mqttchat/v1/rooms/dev/#" not in subscribed(alice)
            assert screen._title().plain.startswith("#lobby")
            assert "left dev" in log_text(alice)
            # Leaving the only room.
            await type_line(pa, "/leave")
            await until(lambda: not chat.model.rooms, pilot=pa)
            alice.flush()
            await pa.pause()
            assert chat.model.current == "" and "mqttchat/v1/rooms/lobby/#" not in subscribed(alice)
            assert screen._title().plain == "no room: /join ROOM"
            assert chat_input.placeholder == "/join ROOM to start"
            assert "you are in no room now" in log_text(alice)
            assert screen.query_one(RoomList).option_count == 0
            await until(lambda: bob.runtime.chat.model.presence["alice"].rooms == (), pilot=pb)  # type: ignore[union-attr]
            # Typing now sends nothing anywhere, and says why.
            await type_line(pa, "anyone there?")
            await until(lambda: "you are in no room" in log_text(alice) and "first" in log_text(alice), pilot=pa)
            await type_line(pb, "after leaving")
            await until(lambda: log_text(bob).count("✓") == 2, pilot=pb)
            await chat.client.ping()  # what the broker sent alice before answering her has arrived
            assert not chat.model.rooms  # what bob said does not bring back a room alice left
            assert "anyone there?" not in log_text(bob)
            # /join brings the room back, with its history, and it receives again.
            await type_line(pa, "/join lobby")
            await until(
                lambda: chat.model.current == "lobby" and "mqttchat/v1/rooms/lobby/#" in subscribed(alice), pilot=pa
            )
            assert texts(alice) == ["before leaving"]
            await type_line(pb, "welcome back")
            await until(lambda: texts(alice) == ["before leaving", "welcome back"], pilot=pa)
            assert screen._title().plain.startswith("#lobby")


async def test_rooms_and_direct_messages_come_back_after_a_restart() -> None:
    """bob's rooms (joined, raw, direct) open again in their order, each with its local history, the one he was
    reading shown; the direct message sent while he was away follows the earlier ones."""
    async with Broker(broker_config()) as broker:
        alice = chat_app(broker.url, "alice")
        async with alice.run_test(size=SIZE) as pa:
            await until(lambda: alice.runtime.chat is not None and alice.runtime.chat.client.connected, pilot=pa)
            bob = chat_app(broker.url, "bob")
            async with bob.run_test(size=SIZE) as pb:
                await until(lambda: bob.runtime.chat is not None and bob.runtime.chat.client.connected, pilot=pb)
                await type_line(pa, "/msg bob first dm")
                await until(lambda: "@alice" in bob.runtime.chat.model.rooms, pilot=pb)  # type: ignore[union-attr]
                for line in ("/join dev", "/raw plain/topic", "/msg alice an answer", "/join dev"):
                    await type_line(pb, line)
                await until(
                    lambda: "@bob" in alice.runtime.chat.model.rooms and len(texts(alice, "@bob")) == 2, pilot=pa
                )  # type: ignore[union-attr]
                order = [room.name for room in bob.runtime.chat.model.ordered_rooms()]  # type: ignore[union-attr]
                assert order == ["lobby", "dev", "@alice", "#plain/topic"]
            await type_line(pa, "/msg bob while you were away")
            await until(lambda: texts(alice, "@bob")[-1] == "while you were away", pilot=pa)
            chat = alice.runtime.chat
            assert chat is not None
            sent = [m for m in chat.model.rooms["@bob"].messages if m.own]
            await until(lambda: all(m.delivery is Delivery.ACKED for m in sent), pilot=pa)
            again = chat_app(broker.url, "bob", rooms=())
            async with again.run_test(size=SIZE) as pb2:
                await until(lambda: again.runtime.chat is not None and again.runtime.chat.client.connected, pilot=pb2)
                model = again.runtime.chat.model  # type: ignore[union-attr]
                assert [room.name for room in model.ordered_rooms()] == ["lobby", "dev", "@alice", "#plain/topic"]
                assert model.current == "dev"
                await until(lambda: len(texts(again, "@alice")) == 3, pilot=pb2)
                assert texts(again, "@alice") == ["first dm", "an answer", "while you were away"]
                assert {"mqttchat/v1/rooms/lobby/#", "mqttchat/v1/rooms/dev/#", "plain/topic"} <= subscribed(again)
                await type_line(pa, "/join dev")
                await type_line(pa, "hello dev")
                await until(lambda: texts(again, "dev") == ["hello dev"], pilot=pb2)


def envelope_json(**fields: object) -> bytes:
    """A version 1 envelope as another client would send it (``None`` leaves a field out)."""
    import json
    import uuid

    body: dict[str, object] = {"v": 1, "id": uuid.uuid4().hex, "seq": 1, "session": "js-session",
                               "ts": time.time(), "nick": "Carol", "text": "hello"}  # fmt: skip
    for key, value in fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body).encode()


async def test_no_input_ends_the_chat_and_an_acknowledged_message_is_kept() -> None:
    """What another client sends wrong (ts in milliseconds, 1e300, a nick with a newline, wrong types, an unknown
    kind) never ends the app: it is dropped and said so, or shown normalised; the valid message after it is shown
    and in the local history; a nick that copies someone else's shows the sender's identity beside it."""
    from mqttchat.chat import protocol as p
    from mqttchat.client import MQTTClient

    async with Broker(broker_config()) as broker:
        bob = chat_app(broker.url, "bob")
        async with bob.run_test(size=SIZE) as pb:
            await until(lambda: bob.runtime.chat is not None and bob.runtime.chat.client.connected, pilot=pb)
            chat = bob.runtime.chat
            assert chat is not None
            async with MQTTClient(broker.url, client_id="another-client") as other:
                topic = p.room_messages("lobby", "carol")
                payloads = [
                    envelope_json(seq=1, ts=time.time() * 1000),  # JavaScript's Date.now()
                    envelope_json(seq=2, ts=1e300),
                    envelope_json(seq="14"),
                    envelope_json(seq=3, kind="edit"),
                    envelope_json(seq=4, nick=42),
                    envelope_json(seq=5, nick="evil\nnick\x1b[2J", text="line one\x1b]0;pwned\x07"),
                    envelope_json(seq=6, nick="n" * 95, text="t" * 20_000),
                    envelope_json(seq=7, nick="bob", text="I am bob, honestly"),
                    b"\xff not json",
                    envelope_json(seq=8, text="still here"),
                ]
                for payload in payloads:
                    assert (await other.publish(topic, payload, 1)).ok  # acknowledged: bob must keep what is valid
                await other.publish(p.presence("carol"), b'{"v":2,"status":"online"}', 1)
                await other.publish(p.room_typing("lobby", "carol"), b'{"typing":false}', 0)
            await until(lambda: "still here" in texts(bob), pilot=pb)
            await until(lambda: chat.model.invalid == 8, pilot=pb)
            bob.flush()
            await pb.pause()
            assert bob._exception is None and bob.is_running
            assert chat.model.dropped == {"ts": 2, "seq": 1, "kind": 1, "nick": 1, "json": 1, "version": 1, "typing": 1}
            shown = [m for m in chat.model.rooms["lobby"].messages if m.envelope.kind == "message"]
            assert [m.envelope.nick for m in shown[:2]] == ["evil␊nick␛[2J", "n" * 63 + "…"]
            assert shown[0].text == "line one␛]0;pwned␇"
            assert shown[1].text.endswith("t… [4,000 more characters cut]") and len(shown[1].text) == 16_029
            assert shown[3].gap_before == 0  # seq 1 to 8 all accounted for except "14", which had no number
            said = [m.text for m in chat.model.rooms["lobby"].messages if m.envelope.kind == "dropped"]
            assert len(said) == 2  # once for the run of bad messages, once for the one after a valid message
            assert said[0].startswith("a message from carol was dropped: ts") and "milliseconds" in said[0]
            assert said[1].startswith("a message from carol was dropped: not UTF-8")
            # The log follows the newest line once its layout caught up with the 20,000-character message.
            await until(lambda: "⚠ a message from carol was dropped: not UTF-8" in log_text(bob), pilot=pb)
            lines = log_text(bob)
            assert "\x1b" not in lines
            assert "(@carol) I am bob, honestly" in lines  # a copied nick: the identity beside it
            assert "(@carol) still here" not in lines  # her own nick (any case): no identity needed
            status = text_of(bob.screen.query_one("#chat-status"), width=400)
            assert "⚠ dropped" in status and "json 1" in status and "ts 2" in status
            stored = [m.text for m in chat.history.page("lobby")]  # type: ignore[union-attr]
            assert "still here" in stored and "I am bob, honestly" in stored
        # After a restart the history shows the same, neutralised, and nothing ends the app.
        again = chat_app(broker.url, "bob", rooms=())
        async with again.run_test(size=SIZE) as pb2:
            await until(lambda: again.runtime.chat is not None and again.runtime.chat.client.connected, pilot=pb2)
            again.flush()
            await pb2.pause()
            lines = log_text(again)
            assert "still here" in lines and "(@carol) I am bob, honestly" in lines and "\x1b" not in lines


async def test_a_history_written_before_the_rules_is_shown_safely() -> None:
    """Rows an older version stored as received (a nick with a newline and an escape, ts in milliseconds, text
    with control characters) are neutralised when loaded and never end the app."""
    from mqttchat.runtime import history_path

    async with Broker(broker_config()) as broker:
        history = History(history_path(parse_url(broker.url).url, "bob"))
        now = time.time()
        old = ChatMessage("lobby", "carol", Envelope("old-1", 1, "s1", now * 1000, "ev\nil\x1b[31m", "a\x1bb"), now)
        history.add(old)
        history.add(ChatMessage("lobby", "carol", Envelope("old-2", 2, "s1", 1e300, "carol", "fine"), now + 1))
        history.close()
        app = chat_app(broker.url, "bob", rooms=())
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.runtime.chat is not None and app.runtime.chat.client.connected, pilot=pilot)
            app.flush()
            await pilot.pause()
            messages = app.runtime.chat.model.rooms["lobby"].messages  # type: ignore[union-attr]
            assert [(m.envelope.nick, m.text) for m in messages[:2]] == [("ev␊il␛[31m", "a␛b"), ("carol", "fine")]
            assert all(0 < m.envelope.ts < 4_102_444_800 for m in messages[:2])
            lines = log_text(app)
            assert "a␛b" in lines and "fine" in lines and "\x1b" not in lines


async def test_page_up_loads_older_direct_messages_from_the_history() -> None:
    """A direct conversation scrolls back into the local history as a room does: PgUp at the top loads the page
    before, until the first message; closed and opened again by a new message, it comes with its history."""
    from mqttchat.chat import protocol as p
    from mqttchat.chat.history import SavedRoom
    from mqttchat.client import MQTTClient
    from mqttchat.runtime import history_path

    async with Broker(broker_config()) as broker:
        history = History(history_path(parse_url(broker.url).url, "bob"))
        start = time.time() - 10_000
        for i in range(1, 251):
            history.add(_message("@alice", "alice", i, start + i))
        history.save_rooms([SavedRoom("lobby", "room"), SavedRoom("@alice", "direct", current=True)])
        history.close()
        app = chat_app(broker.url, "bob", rooms=())
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.runtime.chat is not None and app.runtime.chat.client.connected, pilot=pilot)
            chat = app.runtime.chat
            assert chat is not None and chat.model.current == "@alice"
            room = chat.model.rooms["@alice"]
            assert len(room.messages) == 200  # the newest page
            app.flush()
            await pilot.pause()
            assert "message number 250" in log_text(app)
            for _ in range(40):
                if room.history_exhausted and "message number 1\n" in log_text(app) + "\n":
                    break
                await pilot.press("pageup")
                app.flush()
                await pilot.pause()
            assert [m.envelope.seq for m in room.messages] == list(range(1, 251)) and room.history_exhausted
            assert "message number 1\n" in log_text(app) + "\n"
            # Closed, then opened again by a message from alice: with its history, not only the new message.
            await type_line(pilot, "/leave")
            await until(lambda: "@alice" not in chat.model.rooms, pilot=pilot)
            async with MQTTClient(broker.url, client_id="alice-elsewhere") as alice:
                await alice.publish(p.direct("bob", "alice"), envelope_json(nick="alice", text="are you there?"), 1)
            await until(lambda: "@alice" in chat.model.rooms, pilot=pilot)
            texts_now = [m.text for m in chat.model.rooms["@alice"].messages]
            assert len(texts_now) == 201 and texts_now[-1] == "are you there?"


async def test_a_theme_change_recolours_the_chat_shown() -> None:
    """The chat log's lines are drawn in the new theme's colours as soon as the theme changes: the background,
    the acknowledged marks (the theme's success colour) and a mention (its muted warning) change, and times and
    guides keep the colours of their components."""
    app = make_app(view="chat")

    def colours(log: ChatLog) -> dict[str, set[str]]:
        """The colours on screen now, by what they paint."""
        found: dict[str, set[str]] = {"background": set(), "time": set(), "guide": set(), "acked": set(),
                                      "mention": set()}  # fmt: skip
        for y in range(log.size.height):
            for number, segment in enumerate(log.render_line(y)):
                style = segment.style
                if style is None or style.color is None or style.bgcolor is None:
                    continue
                if number == 0 and re.fullmatch(r"\d\d:\d\d", segment.text):
                    found["time"].add(style.color.name)
                    plain = style.bgcolor == log.rich_style.bgcolor
                    found["background" if plain else "mention"].add(style.bgcolor.name)
                elif segment.text == " │ ":
                    found["guide"].add(style.color.name)
                elif segment.text == " ✓":
                    found["acked"].add(style.color.name)
        return found

    def expected(log: ChatLog) -> dict[str, set[str]]:
        """The colours the log and its components have in the theme in force."""

        def colour(component: str, background: bool = False) -> str:
            style = log.get_component_rich_style(component, partial=True)
            found = style.bgcolor if background else style.color
            assert found is not None
            return found.name

        assert log.rich_style.bgcolor is not None
        return {
            "background": {log.rich_style.bgcolor.name},
            "time": {colour("chat-log--time")},
            "guide": {colour("chat-log--separator")},
            "acked": {colour("chat-log--acked")},
            "mention": {colour("chat-log--mention", background=True)},
        }

    async with app.run_test(size=SIZE) as pilot:
        app.flush()
        await pilot.pause()
        log = app.screen.query_one(ChatLog)
        before = colours(log)
        assert before == expected(log), before
        app.theme = "nord"
        await pilot.pause()
        app.flush()
        await pilot.pause()
        after = colours(log)
        assert after == expected(log), (before, after)
        assert all(after[what] != before[what] for what in ("background", "acked", "mention")), (before, after)


async def test_a_new_nick_moves_the_mention_highlight() -> None:
    """A line that mentions the reader is highlighted by the names the reader has now: after a change of nick,
    carol's "@alice …" is drawn again, without the highlight."""
    app = make_app(view="chat")

    def mention_lines(log: ChatLog) -> list[str]:
        """The lines drawn on another background than the log's."""
        lines = []
        for y in range(log.size.height):
            strip = log.render_line(y)
            first = next(iter(strip), None)
            if first is not None and first.style is not None and first.style.bgcolor != log.rich_style.bgcolor:
                lines.append(strip.text)
        return lines

    async with app.run_test(size=SIZE) as pilot:
        app.flush()
        await pilot.pause()
        log = app.screen.query_one(ChatLog)
        highlighted = mention_lines(log)
        assert highlighted and "carol" in highlighted[0]
        chat = app.runtime.chat
        chat.nick = chat.identity = "dave"
        app.flush()
        await pilot.pause()
        assert log.me == ("dave", "dave")
        assert mention_lines(log) == []
