"""Typing into a running Textual app as a person does: at human pace, or several keys in one terminal read.

Pilot's ``press`` delivers one key and waits until the app is idle, so nothing else (a refresh timer, a handler of
a ``Changed`` message queued behind the key) ever runs "between" two keys the way it does when a person types,
and it never delivers what a terminal delivers for a paste or a fast typist: many keys in one read. This module
does both, through the terminal's own bytes:

- :func:`type_slowly` sends each key on its own, then lets the app's refresh timer fire (twice, by default) and
  the app go idle before the next key: whatever resets a field on a refresh shows up.
- :func:`type_burst` sends all the keys in one read: their bytes go through Textual's xterm parser in one
  ``feed`` (as the terminal driver does with one ``os.read``) and every event is handed to the driver before the
  app gets a chance to process any of them; then it waits until the app is idle.

Keys are Pilot key names (``"a"``, ``"enter"``, ``"shift+tab"``, ``"ctrl+s"``, ``"backspace"``, ``"end"``);
:func:`spell` turns text into them (``"\\n"`` is Enter, ``"\\t"`` Tab). Example::

    await type_slowly(pilot, *spell("world"))
    await type_burst(pilot, *spell("burst one\\nburst two\\n"))
    await until(lambda: ..., what="both lines sent", pilot=pilot)

An app with a ``flush_count`` attribute (``MQTTChatApp``: the times its refresh timer fired) is waited on by
that count; any other app gets a pause of ``fallback_pause`` seconds between keys.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual._xterm_parser import XTermParser
from textual.pilot import Pilot

from tests.helpers.waiting import until

__all__ = ["KEY_BYTES", "settle", "spell", "terminal_bytes", "type_burst", "type_slowly", "wait_for_refreshes"]

#: What a terminal (xterm, tmux) sends for the named keys. Single characters are sent as themselves.
KEY_BYTES: dict[str, str] = {
    "enter": "\r",
    "tab": "\t",
    "shift+tab": "\x1b[Z",
    "backspace": "\x7f",
    "delete": "\x1b[3~",
    "escape": "\x1b",
    "space": " ",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "home": "\x1b[H",
    "end": "\x1b[F",
    "pageup": "\x1b[5~",
    "pagedown": "\x1b[6~",
    "ctrl+up": "\x1b[1;5A",
    "ctrl+down": "\x1b[1;5B",
    "ctrl+right": "\x1b[1;5C",
    "ctrl+left": "\x1b[1;5D",
    "alt+up": "\x1b[1;3A",
    "alt+down": "\x1b[1;3B",
    "shift+up": "\x1b[1;2A",
    "shift+down": "\x1b[1;2B",
    "slash": "/",
    "question_mark": "?",
    "plus": "+",
    "minus": "-",
    "asterisk": "*",
    "full_stop": ".",
    "comma": ",",
}


def spell(text: str) -> list[str]:
    """The keys that type ``text``: one per character, ``"\\n"`` as Enter and ``"\\t"`` as Tab."""
    return ["enter" if ch == "\n" else "tab" if ch == "\t" else ch for ch in text]


def terminal_bytes(key: str) -> str:
    """What a terminal sends for ``key`` (a Pilot key name or one character)."""
    if len(key) == 1:
        return key
    if key in KEY_BYTES:
        return KEY_BYTES[key]
    modifier, _, base = key.rpartition("+")
    if modifier == "ctrl" and len(base) == 1 and base.isalpha():
        return chr(ord(base.lower()) & 0x1F)
    if modifier == "alt" and len(base) == 1:
        return "\x1b" + base
    raise ValueError(f"no terminal bytes known for the key {key!r}: add them to KEY_BYTES")


def _deliver(pilot: Pilot[Any], data: str) -> None:
    """Parse ``data`` as one terminal read and hand every event to the driver without yielding in between."""
    app = pilot.app
    driver = app._driver
    assert driver is not None, "the app is not running"
    parser = XTermParser()
    events = list(parser.feed(data))
    events.extend(parser.feed(""))  # end of this read: a lone Escape is a key, not the start of a sequence
    for event in events:
        driver.process_message(event)  # as the driver's input thread does: queued for the app, in order


async def settle(pilot: Pilot[Any], rounds: int = 50) -> None:
    """Let the app handle what its message queues hold, and what that posts (a key, the ``Changed`` it causes,
    that message bubbling up), until every queue of the app and its screen is empty (at most ``rounds`` rounds).

    Unlike ``pilot.pause()`` this does not wait for the process to look idle (which, with a refresh timer
    running, often means waiting its full second).
    """
    app = pilot.app
    for _ in range(rounds):
        await pilot._wait_for_screen()
        if app._exception is not None:
            return
        nodes = [app, *app.screen.walk_children(with_self=True)]
        if all(node._message_queue.empty() for node in nodes):
            return


async def wait_for_refreshes(pilot: Pilot[Any], count: int = 2, *, fallback_pause: float = 0.15) -> None:
    """Let the app's refresh timer fire ``count`` times (or pause ``fallback_pause`` s), then let it settle."""
    app = pilot.app
    if hasattr(app, "flush_count"):
        target = app.flush_count + count
        await until(lambda: app.flush_count >= target, what=f"{count} refreshes of the screen", pilot=pilot)
    else:
        await asyncio.sleep(fallback_pause)
    await settle(pilot)


async def type_slowly(pilot: Pilot[Any], *keys: str, refreshes: int = 2, fallback_pause: float = 0.15) -> None:
    """Type ``keys`` one at a time as a person does: after each, the screen refreshes ``refreshes`` times."""
    for key in keys:
        _deliver(pilot, terminal_bytes(key))
        await settle(pilot)
        await wait_for_refreshes(pilot, refreshes, fallback_pause=fallback_pause)


async def press(pilot: Pilot[Any], *keys: str) -> None:
    """Press ``keys`` one after the other, each handled before the next (no refresh in between: fast); what
    ``pilot.press`` does, without its wait for the process to look idle."""
    for key in keys:
        _deliver(pilot, terminal_bytes(key))
        await settle(pilot)


def send_key(pilot: Pilot[Any], key: str) -> None:
    """Hand ``key`` to the app as the terminal would, and return at once (then wait with ``until``)."""
    _deliver(pilot, terminal_bytes(key))


async def type_burst(pilot: Pilot[Any], *keys: str) -> None:
    """Deliver ``keys`` in one terminal read (a paste, a fast typist), then wait until the app is idle."""
    _deliver(pilot, "".join(terminal_bytes(key) for key in keys))
    await settle(pilot)
    await wait_for_refreshes(pilot, 1)
