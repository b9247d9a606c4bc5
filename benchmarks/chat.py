"""The chat, measured: the message view with 100,000 messages, the model's ingest rate, and two members
chatting through the embedded broker and through mosquitto side by side.

Run: ``python -m benchmarks.chat [--messages 100000] [--chat 2000]``. Reported:

1. view: ``--messages`` messages arriving in a room (5,000 per screen update) and switching to it, the same
   number shown at once without the background layout, jumping to 300 random places and drawing the screen,
   paging up through 200 pages, following new messages at the bottom (100 per update), and a terminal resize:
   worst times in milliseconds. Target (issue 6): no stall (worst < 50 ms) when scrolling.
2. model: chat envelopes decoded, de-duplicated and ordered per second (plain Python, no screen).
3. end to end: alice sends ``--chat`` messages (QoS 1) to bob; time from publish to bob's model (p50, p99) and
   messages per second, through mqttchat's broker and through mosquitto (each in its own process, queue and
   in-flight limits lifted), with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.broker import start_broker


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def view(count: int) -> dict[str, float]:
    from mqttchat.chat.model import ChatMessage
    from mqttchat.chat.protocol import Envelope
    from mqttchat.ui.widgets.chat_log import ChatLog
    from tests.helpers.scenes import make_app

    rng = random.Random(1)
    words = ["the", "broker", "moved", "to", "the", "new", "rack", "and", "**every**", "sensor", "reconnected",
             "within", "`30 s`", "as", "expected"]  # fmt: skip

    def messages(room: str) -> list[ChatMessage]:
        start = time.time() - count
        out = []
        for i in range(1, count + 1):
            text = " ".join(rng.choice(words) for _ in range(rng.choice((3, 8, 15, 40))))
            user = f"user{i % 9}"
            out.append(ChatMessage(room, user, Envelope(f"{room}{i}", i, "s", start + i, user, text), start + i))
        return out

    app = make_app(view="chat")
    chat = app.runtime.chat
    results: dict[str, float] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        log = app.screen.query_one(ChatLog)

        def flush() -> float:
            began = time.perf_counter()
            app.flush()
            return (time.perf_counter() - began) * 1000

        # Messages arriving in a room not shown, 5,000 per screen update (a flood), then switching to it.
        big = chat.model.room("big")
        incoming = messages("big")
        ticks = []
        for i in range(0, count, 5_000):
            big.messages.extend(incoming[i : i + 5_000])
            big.version += 1
            ticks.append(flush())
        for _ in range(200):  # the background layout catches up, a few milliseconds per update
            if log._layouts.get(id(big)) and log._layouts[id(big)].done:
                break
            ticks.append(flush())
        results["arriving: worst update ms"] = max(ticks)
        chat.model.select("big")
        results["switch to it ms"] = flush()
        await pilot.pause()
        # The same number arriving all at once in a room that is then shown at once: laid out on the spot.
        cold = chat.model.room("cold")
        cold.messages.extend(messages("cold"))
        chat.model.select("cold")
        results["switch, laid out on the spot ms"] = flush()
        chat.model.select("big")
        flush()
        await pilot.pause()
        height = log.size.height

        def draw() -> None:
            for y in range(height):
                log.render_line(y)

        jumps = []
        for _ in range(300):
            began = time.perf_counter()
            log.scroll_to(y=rng.randrange(log.total_lines), animate=False, immediate=True)
            draw()
            jumps.append((time.perf_counter() - began) * 1000)
        results["random jump worst ms"] = max(jumps)
        results["random jump p99 ms"] = percentile(jumps, 0.99)
        log.action_move("all", 1)
        pages = []
        for _ in range(200):
            began = time.perf_counter()
            log.action_move("page", -1)
            draw()
            pages.append((time.perf_counter() - began) * 1000)
        results["page up worst ms"] = max(pages)
        log.action_move("all", 1)
        await pilot.pause()
        ticks = []
        for tick in range(50):
            for j in range(100):
                i = count + tick * 100 + j + 1
                now = time.time()
                chat.model._append(big, ChatMessage("big", "bob", Envelope(f"n{i}", i, "s", now, "bob", "new"), now))
            began = time.perf_counter()
            app.flush()
            draw()
            ticks.append((time.perf_counter() - began) * 1000)
        results["following 100 new/update worst ms"] = max(ticks)
        # A resize: the room is drawn at the old width while the new layout is built in the background.
        await pilot.resize_terminal(140, 50)
        await pilot.pause()
        ticks = []
        began = time.perf_counter()
        for _ in range(1000):
            ticks.append(flush())
            if log._pending is None and log._layout is not None and log._layout.width == log.text_width:
                break
            await pilot.pause()
        results["resize: worst update ms"] = max(ticks)
        results["resize: new layout after s"] = time.perf_counter() - began
        results["lines"] = float(log.total_lines)
    return results


def model_rate(count: int) -> float:
    from mqttchat.chat import protocol as p
    from mqttchat.chat.model import ChatModel

    senders = [p.Sender(f"user{i}") for i in range(10)]
    items = []
    for i in range(count):
        sender = senders[i % 10]
        items.append((p.room_messages("lobby", sender.nick), sender.envelope(f"message {i}", room="lobby").to_json()))
    model = ChatModel("me")
    model.room("lobby")  # a reader takes messages only for the rooms it is in
    began = time.perf_counter()
    for topic, payload in items:
        model.ingest(topic, payload, 0.0)
    assert len(model.rooms["lobby"].messages) == count
    return count / (time.perf_counter() - began)


async def end_to_end(url: str, count: int) -> dict[str, float]:
    import dataclasses

    from mqttchat.chat.model import ChatMessage
    from mqttchat.chat.service import ChatService, chat_client_options
    from mqttchat.client import ClientOptions, MQTTClient, parse_url

    async def member(nick: str) -> ChatService:
        base = dataclasses.replace(ClientOptions(parse_url(url)), client_id=f"bench-{nick}-{os.getpid()}")
        client = MQTTClient(chat_client_options(base, nick, ["lobby"], session_expiry=0))
        service = ChatService(client, nick, ["lobby"])
        await client.connect()
        await service.start()
        return service

    alice, bob = await member("alice"), await member("bob")
    lobby = bob.model.room("lobby")
    await asyncio.sleep(0.3)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    seen = 0
    began = time.perf_counter()
    for i in range(count):
        own = await alice.send("lobby", f"message {i}")
        assert own is not None
        sent_at[own.envelope.id] = time.perf_counter()
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the reader run, as a person typing would
    deadline = time.perf_counter() + 30

    def collect(new: list[ChatMessage]) -> None:
        now = time.perf_counter()
        latencies.extend((now - sent_at.get(message.envelope.id, now)) * 1000 for message in new)

    while len(lobby.messages) < count and time.perf_counter() < deadline:
        collect(lobby.messages[seen:])
        seen = len(lobby.messages)
        await asyncio.sleep(0.001)
    collect(lobby.messages[seen:])
    elapsed = time.perf_counter() - began
    delivered = len(lobby.messages)
    in_order = [m.envelope.seq for m in lobby.messages] == list(range(1, delivered + 1))
    for service in (alice, bob):
        await service.stop()
        await service.client.disconnect()
    return {
        "delivered": float(delivered),
        "in order": float(in_order),
        "msgs/s": delivered / elapsed,
        "p50 ms": statistics.median(latencies) if latencies else 0.0,
        "p99 ms": percentile(latencies, 0.99) if latencies else 0.0,
    }


async def main_async(messages: int, chat_messages: int) -> None:
    print(f"view: a room of {messages:,} messages (160x50 terminal)")
    for name, value in (await view(messages)).items():
        print(f"  {name:<32}{value:>12,.1f}")
    print(f"\nmodel: {model_rate(100_000):,.0f} envelopes/s decoded, de-duplicated and ordered")
    print(f"\nend to end: alice sends {chat_messages:,} messages to bob (QoS 1)")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mqttchat", "mosquitto"):  # each in its own process, with no queue or in-flight limits
            with start_broker(name, Path(tmp)) as broker:
                results[name] = await end_to_end(broker.url, chat_messages)
    keys = ["delivered", "in order", "msgs/s", "p50 ms", "p99 ms"]
    print(f"  {'through':<18}" + "".join(f"{k:>12}" for k in keys))
    for name, values in results.items():
        print(f"  {name:<18}" + "".join(f"{values[k]:>12,.1f}" for k in keys))
    ours, theirs = results["mqttchat"], results["mosquitto"]
    print(f"  ratio mqttchat broker/mosquitto: throughput {ours['msgs/s'] / theirs['msgs/s']:.2f}x, "
          f"p50 latency {ours['p50 ms'] / max(theirs['p50 ms'], 1e-9):.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the big room")
    parser.add_argument("--chat", type=int, default=2000, help="messages sent end to end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("XDG_DATA_HOME", tmp)
        os.environ.setdefault("XDG_CONFIG_HOME", tmp)
        asyncio.run(main_async(args.messages, args.chat))


if __name__ == "__main__":
    main()
