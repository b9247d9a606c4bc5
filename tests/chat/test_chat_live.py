"""Chat members talking through the embedded broker and through mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttchat.broker.auth import PasswordFile
from mqttchat.broker.server import Broker
from mqttchat.chat import CHAT_ACL
from mqttchat.chat import protocol as p
from mqttchat.chat.model import Delivery, Room
from mqttchat.client import MQTTClient
from tests.helpers.brokers import RunningBroker, broker_config
from tests.helpers.chat_members import member
from tests.helpers.waiting import until


async def test_two_members_chat_with_presence_and_delivery_states(url: str) -> None:
    alice = await member(url, "alice")
    bob = await member(url, "bob")
    await until(lambda: ("bob", "online") in alice.model.members("lobby"))
    for i in range(20):
        await alice.command("lobby", f"message {i}")
    await alice.command("lobby", "/me waves")
    await until(lambda: len(bob.model.rooms["lobby"].messages) == 21)
    got = bob.model.rooms["lobby"].messages
    assert [m.text for m in got[:20]] == [f"message {i}" for i in range(20)]  # in the order sent
    assert got[-1].envelope.kind == "action" and got[-1].sender == "alice"
    await until(lambda: all(m.delivery is Delivery.ACKED for m in alice.model.rooms["lobby"].messages))
    # A clean exit says offline; a killed connection is announced by the will.
    await bob.stop()
    await bob.client.disconnect()
    await until(lambda: ("bob", "offline") in alice.model.members("lobby"))
    carol = await member(url, "carol")
    await until(lambda: ("carol", "online") in alice.model.members("lobby"))
    assert carol.client._link is not None
    carol.client._link.abort()  # no DISCONNECT, no offline message: the broker publishes the will
    await until(lambda: ("carol", "offline") in alice.model.members("lobby"))
    await carol.client.disconnect()
    await alice.stop()
    await alice.client.disconnect()


async def test_one_identity_chats_from_two_machines(url: str) -> None:
    """Each installation has its own client id (and session): alice on her laptop and her desktop are both
    connected, both get what bob says, and when one leaves the other still shows her online."""
    laptop = await member(url, "alice", install="0123456789ab")
    desktop = await member(url, "alice", install="ba9876543210")
    assert laptop.client.client_id != desktop.client.client_id
    bob = await member(url, "bob")
    await bob.command("lobby", "hello alice")
    for alice in (laptop, desktop):
        await until(lambda alice=alice: [m.text for m in alice.model.rooms["lobby"].messages] == ["hello alice"])
    assert laptop.client.connected and desktop.client.connected  # neither took the other's session over
    await until(lambda: ("alice", "online") in bob.model.members("lobby"))
    await laptop.stop()
    await laptop.client.disconnect()  # says "offline"; the desktop says "online" again
    await until(lambda: ("alice", "online") in bob.model.members("lobby"))
    await asyncio.sleep(0.3)
    assert ("alice", "online") in bob.model.members("lobby")
    for service in (desktop, bob):
        await service.stop()
        await service.client.disconnect()


async def test_an_online_announcement_on_its_way_does_not_outlive_stop(url: str) -> None:
    """stop() says "offline" last: an "online" scheduled just before (after a reconnect, or when another of our
    machines left) is cancelled, so the retained presence does not claim we are still here."""
    alice = await member(url, "alice")
    alice._spawn(alice.announce("online"))
    await alice.stop()
    await alice.client.disconnect()
    async with MQTTClient(url, client_id="presence-reader") as reader:
        stream = reader.messages()
        await reader.subscribe(p.presence("alice"), qos=1)
        async with asyncio.timeout(5):
            presence = p.decode_presence((await stream.get()).payload)
    assert presence is not None and presence.status == "offline"


@pytest.mark.parametrize("version", [5, 4])
async def test_offline_member_catches_up_in_order(url: str, version: int) -> None:
    """A persistent session (MQTT 5: clean start off and a session expiry; 3.1.1: clean session off) keeps what
    was said while a member was away; MQTT 3.1.1 works with the JSON envelope alone."""
    alice = await member(url, "alice", version=version)
    bob = await member(url, "bob", version=version)
    await bob.stop()
    await bob.client.disconnect()
    for i in range(10):
        await alice.send("lobby", f"while away {i}")
    await until(lambda: all(m.delivery is Delivery.ACKED for m in alice.model.rooms["lobby"].messages))
    await asyncio.sleep(1.1)  # the catch-up is recognised by timestamps older than the new connection
    bob_again = await member(url, "bob", version=version)
    await until(lambda: len(bob_again.model.rooms["lobby"].messages) >= 10)
    got = bob_again.model.rooms["lobby"].messages
    assert [m.text for m in got] == [f"while away {i}" for i in range(10)]
    assert all(m.away for m in got)
    for service in (alice, bob_again):
        await service.stop()
        await service.client.disconnect()


async def test_duplicates_are_dropped_and_gaps_shown() -> None:
    async with Broker(broker_config()) as broker:
        bob = await member(broker.url, "bob")
        async with MQTTClient(broker.url) as raw:
            sender = p.Sender("mallory-test")
            first, _, third = (sender.envelope(f"m{i}") for i in range(1, 4))
            topic = p.room_messages("lobby", "tester")
            await raw.publish(topic, first.to_json(), 1)
            await raw.publish(topic, first.to_json(), 1)  # redelivered: same id
            await raw.publish(topic, third.to_json(), 1)  # the second never sent
        await until(lambda: len(bob.model.rooms["lobby"].messages) == 2)
        await asyncio.sleep(0.2)
        got = bob.model.rooms["lobby"].messages
        assert [m.text for m in got] == ["m1", "m3"] and got[1].gap_before == 1
        assert bob.model.duplicates == 1
        await bob.stop()
        await bob.client.disconnect()


@pytest.mark.parametrize("peer", ["embedded", "mosquitto"])
async def test_impersonation_is_refused_by_the_chat_acl(
    tmp_path: Path, peer: str, mosquitto_factory: Callable[..., RunningBroker]
) -> None:
    """The shipped chat ACL, in mosquitto's format, works in the embedded broker and in mosquitto itself."""
    passwords = PasswordFile()
    passwords.set_password("alice", "a-secret", iterations=1000)
    passwords.set_password("bob", "b-secret", iterations=1000)
    passwords.save(tmp_path / "passwd")
    async with contextlib.AsyncExitStack() as stack:
        if peer == "mosquitto":
            url = mosquitto_factory(
                f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\nacl_file {CHAT_ACL}\n"
            ).url
        else:
            config = broker_config(allow_anonymous=False, password_file=tmp_path / "passwd", acl_file=CHAT_ACL)
            url = (await stack.enter_async_context(Broker(config))).url
        alice = await member(url, "alice", username="alice", password="a-secret")
        bob = await member(url, "bob", username="bob", password="b-secret")
        await alice.send("lobby", "honest")
        await until(lambda: len(bob.model.rooms["lobby"].messages) == 1)
        forged = p.Sender("bob").envelope("I am bob, trust me")
        result = await alice.client.publish(p.room_messages("lobby", "bob"), forged.to_json(), 1)
        assert result.reason_code.title == "Not authorized"
        result = await alice.client.publish(p.presence("bob"), b'{"status": "offline"}', 1, retain=True)
        assert not result.ok
        # Reading someone else's direct messages is refused too: at SUBACK (embedded) or at delivery (mosquitto).
        codes = await alice.client.subscribe(f"{p.PREFIX}/direct/bob/+", qos=1)
        assert codes[0].title == ("Granted QoS 1" if peer == "mosquitto" else "Not authorized")
        stream = alice.client.messages()
        await alice.command("lobby", "/msg bob psst")
        await until(lambda: "@alice" in bob.model.rooms)
        await bob.send("lobby", "got it")  # arrives after any copy of the direct message would have
        await until(lambda: len(alice.model.rooms["lobby"].messages) == 2)
        received = []
        while (message := stream.get_nowait()) is not None:
            received.append(message.topic)
        assert received and not [topic for topic in received if topic.startswith(f"{p.PREFIX}/direct/bob/")]
        await asyncio.sleep(0.3)
        assert [m.text for m in bob.model.rooms["lobby"].messages] == ["honest", "got it"]  # no forgery shown
        assert alice.identity == "alice" and bob.model.rooms["lobby"].messages[0].sender == "alice"
        for service in (alice, bob):
            await service.stop()
            await service.client.disconnect()


@pytest.mark.parametrize("version", [5, 4])
async def test_raw_rooms_work_with_mosquitto_clients(mosquitto: RunningBroker, version: int) -> None:
    chat = await member(mosquitto.url, "alice", version=version)
    assert await chat.command("lobby", "/raw plain/room") is None
    subprocess.run(["mosquitto_pub", "-p", str(mosquitto.port), "-t", "plain/room", "-m", "hello from mosquitto_pub"],
                   check=True, timeout=10)  # fmt: skip
    await until(lambda: [m.text for m in chat.model.rooms["#plain/room"].messages] == ["hello from mosquitto_pub"])
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(mosquitto.port), "-t", "plain/room", "-C", "1"],
                           stdout=subprocess.PIPE)  # fmt: skip
    await asyncio.sleep(0.5)
    own = await chat.send("#plain/room", "hello from mqttchat")
    assert own is not None
    await until(lambda: own.delivery is Delivery.ACKED)
    out, _ = await asyncio.to_thread(sub.communicate, timeout=10)
    assert out == b"hello from mqttchat\n"
    await asyncio.sleep(0.3)  # our own message is shown once: not again when the broker sends it back
    assert [m.text for m in chat.model.rooms["#plain/room"].messages] == ["hello from mosquitto_pub",
                                                                        "hello from mqttchat"]  # fmt: skip
    await chat.stop()
    await chat.client.disconnect()


async def test_commands_explain_themselves() -> None:
    async with Broker(broker_config()) as broker:
        chat = await member(broker.url, "alice")
        assert "/join ROOM" in (await chat.command("lobby", "/help") or "")
        assert "unknown command /frobnicate" in (await chat.command("lobby", "/frobnicate") or "")
        assert "may not contain" in (await chat.command("lobby", "/join a/b") or "")
        assert "one word" in (await chat.command("lobby", "/join two words") or "")
        assert "usage: /msg" in (await chat.command("lobby", "/msg") or "")
        assert "mqttchat/v1/rooms/lobby/messages/alice" in (await chat.command("lobby", "/topic") or "")
        assert await chat.command("lobby", "/join dev") is None and chat.model.current == "dev"
        assert await chat.command("dev", "/nick Alice2") == "you are now Alice2"
        assert "alice (online)" in (await chat.command("lobby", "/who") or "")
        assert await chat.command("lobby", "x" * 16_001) is None and chat.notices == [
            "not sent: 16,001 characters, a message holds at most 16,000"
        ]
        assert not [m for m in chat.model.rooms["lobby"].messages if m.own]
        await chat.stop()
        await chat.client.disconnect()


async def test_msg_takes_a_nick_and_writes_to_its_identity() -> None:
    """/msg NICK resolves the nick to the identity that uses it (the topic level a DM goes to); an unknown or
    shared nick is explained, and /msg @IDENTITY writes to an identity as it is."""
    async with Broker(broker_config()) as broker:
        alice = await member(broker.url, "alice")
        carol = await member(broker.url, "carol")
        await carol.command("lobby", "/nick Carol")
        await until(lambda: "carol" in alice.model.presence and alice.model.presence["carol"].nick == "Carol")
        answer = await alice.command("lobby", "/msg Carol hello there")
        assert answer is not None and "Carol is @carol" in answer
        await until(lambda: [m.text for m in carol.model.rooms.get("@alice", Room("")).messages] == ["hello there"])
        assert "@Carol" not in alice.model.rooms and "@carol" in alice.model.rooms
        assert await alice.command("lobby", "/msg carol again") is None  # an identity seen: no remark
        answer = await alice.command("lobby", "/msg Nobody hi")
        assert answer is not None and "nobody called Nobody" in answer and "/msg @Nobody" in answer
        assert "@Nobody" not in alice.model.rooms
        dave = await member(broker.url, "dave")
        await dave.command("lobby", "/nick Carol")  # two identities now use the nick Carol (but carol is one)
        await until(lambda: "dave" in alice.model.presence and alice.model.presence["dave"].nick == "Carol")
        answer = await alice.command("lobby", "/msg Carol hi")
        assert answer is not None and "@carol, @dave" in answer
        assert await alice.command("lobby", "/msg @zed for later") is None and "@zed" in alice.model.rooms
        for service in (alice, carol, dave):
            await service.stop()
            await service.client.disconnect()
