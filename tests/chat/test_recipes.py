"""The client recipes of docs/chat-protocol.md, run exactly as the document prints them, against mqttchat's chat.

The MQTT.js recipe runs on Node.js with the pinned peers of tests/peers/node (``npm ci`` there; .ci/run does it);
a missing Node.js or install fails these tests with the fix named, never skips them.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from mqttchat.broker.server import Broker
from mqttchat.chat.model import ChatModel, Delivery
from tests.helpers.brokers import broker_config
from tests.helpers.chat_members import member
from tests.helpers.node import NODE_DIR, node_exe
from tests.helpers.waiting import until

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "chat-protocol.md"


def recipe(name: str) -> str:
    """The code block that follows ``<!-- recipe: NAME -->`` in the protocol document."""
    text = DOC.read_text(encoding="utf-8")
    marker = f"<!-- recipe: {name} -->"
    assert text.count(marker) == 1, f"{DOC} has no (or more than one) {marker}"
    found = re.match(r"\s*```[a-z]*\n(.*?\n)```", text.split(marker, 1)[1], re.S)
    assert found is not None, f"no code block after {marker}"
    return found.group(1)


class Program:
    """A recipe running as a process: lines in on stdin, lines out on stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def expect(self, condition: Callable[[str], bool], timeout: float = 15.0) -> str:
        """Read stdout until a line satisfies ``condition``; fail if the program ends or time runs out first."""
        for line in self.lines:
            if condition(line):
                return line
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    err = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"the recipe ended (code {await self.process.wait()}): {err.decode()}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if condition(line):
                    return line

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def end_input(self) -> int:
        """Close stdin (Ctrl+D): the recipe leaves cleanly; return its exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(15):
            return await self.process.wait()

    def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def start(argv: list[str], env: dict[str, str], cwd: Path) -> Program:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Program(process)


async def start_mqttjs(url: str, identity: str, nick: str, install: str = "0a1b2c3d4e5f") -> Program:
    """The MQTT.js recipe as an ES module evaluated in tests/peers/node (where ``mqtt`` is installed)."""
    env = {"MQTT_URL": url, "CHAT_ID": identity, "CHAT_NICK": nick, "CHAT_INSTALL": install}
    return await start([node_exe(), "--input-type=module", "--eval", recipe("chat-client.mjs")], env, NODE_DIR)


async def start_python(url: str, identity: str, nick: str, tmp_path: Path) -> Program:
    script = tmp_path / "chat_client.py"
    script.write_text(recipe("chat_client.py"), encoding="utf-8")
    env = {"MQTT_URL": url, "CHAT_ID": identity, "CHAT_NICK": nick, "CHAT_INSTALL": "5f4e3d2c1b0a",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    return await start([sys.executable, str(script)], env, tmp_path)


def said(model: ChatModel, room: str = "lobby") -> list[tuple[str, str, str]]:
    return [(m.sender, m.envelope.nick, m.text) for m in model.rooms[room].messages if m.envelope.kind == "message"]


async def converse(program: Program, url: str, identity: str, nick: str) -> None:
    """The recipe and mqttchat's chat talk: presence, a message each way, a direct message, a clean exit."""
    alice = await member(url, "alice")
    try:
        await program.expect(lambda line: line == "ready")
        await until(lambda: (identity, "online") in alice.model.members("lobby"), timeout=10)
        assert alice.model.presence[identity].nick == nick
        program.say(f"hello from {nick}")
        program.say("and a second line")
        await until(lambda: len(said(alice.model)) == 2, timeout=10)
        assert said(alice.model) == [(identity, nick, f"hello from {nick}"), (identity, nick, "and a second line")]
        assert alice.model.invalid == 0 and alice.model.gaps == 0 and not alice.model.dropped
        own = await alice.send("lobby", "hi there *you*")
        assert own is not None
        await program.expect(lambda line: line == "lobby alice: hi there *you*")
        await alice.command("lobby", "/me waves")
        await program.expect(lambda line: line == "lobby * alice waves")
        await alice.command("lobby", f"/msg {nick} psst")  # by nick: the chat finds the identity
        await program.expect(lambda line: line == "@alice alice: psst")
        await until(lambda: all(m.delivery is Delivery.ACKED for m in alice.model.rooms["lobby"].messages if m.own))
        assert await program.end_input() == 0
        await until(lambda: (identity, "offline") in alice.model.members("lobby"), timeout=10)
    finally:
        program.stop()
        await alice.stop()
        await alice.client.disconnect()


async def test_the_mqttjs_recipe_chats_with_mqttchat(url: str) -> None:
    await converse(await start_mqttjs(url, "carol", "Carol"), url, "carol", "Carol")


async def test_the_python_recipe_chats_with_mqttchat(url: str, tmp_path: Path) -> None:
    await converse(await start_python(url, "dave", "Dave", tmp_path), url, "dave", "Dave")


async def test_the_mqttjs_recipe_gives_its_session_up_when_taken_over() -> None:
    """Two copies with one client id: the first is told 0x8E Session taken over and stops instead of taking it back
    (MQTT.js would otherwise reconnect every second or two, each copy taking the session from the other)."""
    async with Broker(broker_config()) as broker:
        first = await start_mqttjs(broker.url, "carol", "Carol")
        second = None
        try:
            await first.expect(lambda line: line == "ready")
            second = await start_mqttjs(broker.url, "carol", "Carol")
            await second.expect(lambda line: line == "ready")
            async with asyncio.timeout(15):
                assert await first.process.wait() == 2
            alice = await member(broker.url, "alice")
            second.say("still here")
            await until(lambda: [text for *_, text in said(alice.model)] == ["still here"], timeout=10)
            assert second.process.returncode is None  # the first copy ended: it cannot take the session back
            assert ("carol", "online") in alice.model.members("lobby")
            await alice.stop()
            await alice.client.disconnect()
            assert await second.end_input() == 0
        finally:
            first.stop()
            if second is not None:
                second.stop()
