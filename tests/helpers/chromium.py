"""A headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for ``mqttchat serve``.

textual-serve draws the app in an xterm.js canvas, so the page holds no text to read. The page is given a script,
before its own, that keeps what its WebSocket receives (the app's screen output); :meth:`Page.screen_text` is that
output with the terminal's control sequences removed: the words the app drew, in the order it drew them. Keys are
typed as a user types them (DevTools ``Input.dispatchKeyEvent`` on the focused terminal).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from mqttchat.ui.browser import wait_or_kill

__all__ = ["Page", "chromium_path", "open_page"]

#: Kept in the page: what the app sent (its screen output), decoded, at most 4 MB of the latest.
CAPTURE_SCRIPT = """
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  window.__received = "";
  function Capturing(url, protocols) {
    const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        window.__received += decoder.decode(new Uint8Array(event.data), {stream: true});
        if (window.__received.length > 4000000) window.__received = window.__received.slice(-2000000);
      }
    });
    return socket;
  }
  Capturing.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Capturing[name] = Native[name];
  window.WebSocket = Capturing;
})();
"""

#: Control sequences: CSI (colours, cursor moves), OSC (titles), other escapes.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f]")

#: DevTools key descriptions of the keys the tests type.
_KEYS: dict[str, dict[str, Any]] = {
    "enter": {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
    "escape": {"key": "Escape", "code": "Escape", "windowsVirtualKeyCode": 27},
    "down": {"key": "ArrowDown", "code": "ArrowDown", "windowsVirtualKeyCode": 40},
    "right": {"key": "ArrowRight", "code": "ArrowRight", "windowsVirtualKeyCode": 39},
    "end": {"key": "End", "code": "End", "windowsVirtualKeyCode": 35},
}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def plain(text: str) -> str:
    """Terminal output without its control sequences."""
    return _CONTROL.sub("", text)


class Page:
    """One tab of the browser, attached over DevTools."""

    def __init__(self, socket: ClientConnection, session: str) -> None:
        self._socket = socket
        self._session = session
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            future = self._waiting.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if not browser:
            message["sessionId"] = self._session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._socket.send(json.dumps(message))
        async with asyncio.timeout(30):
            answer = await future
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def status(self) -> int | None:
        """The HTTP status of the page loaded (from the Navigation Timing API)."""
        value = await self.evaluate("performance.getEntriesByType('navigation').map(e => e.responseStatus)[0]")
        return int(value) if value is not None else None

    async def screen_text(self) -> str:
        """What the app has drawn so far, without control sequences."""
        return plain(await self.evaluate("window.__received || ''") or "")

    async def wait_for_text(self, *words: str, timeout: float = 60.0) -> str:
        """Wait until the app has drawn each of ``words``; the text drawn then."""
        text = ""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    text = await self.screen_text()
                    if all(word in text for word in words):
                        return text
                    await asyncio.sleep(0.1)
        except TimeoutError:
            missing = [word for word in words if word not in text]
            shown = text[-3000:]
            raise AssertionError(f"the page did not show {missing} in {timeout} s; it showed: {shown!r}") from None

    async def focus_terminal(self) -> None:
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")

    async def press(self, key: str) -> None:
        """Type one key: a printable character, or a name in ``_KEYS``."""
        if key in _KEYS:
            description = _KEYS[key]
        else:
            code = f"Key{key.upper()}" if key.isalpha() else ""
            description = {"key": key, "code": code, "text": key, "windowsVirtualKeyCode": ord(key.upper())}
        await self.send("Input.dispatchKeyEvent", {"type": "keyDown", **description})
        up = {name: value for name, value in description.items() if name != "text"}
        await self.send("Input.dispatchKeyEvent", {"type": "keyUp", **up})

    async def next_frame(self) -> None:
        """Wait until the page has painted twice more (the terminal draws what it received on its next frame)."""
        await self.send("Runtime.evaluate", {
            "expression": "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))",
            "awaitPromise": True,
        })  # fmt: skip

    async def screenshot(self, path: Path) -> None:
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(result["data"]))


@contextlib.asynccontextmanager
async def open_page(width: int = 1280, height: int = 800) -> AsyncIterator[Page]:
    """A headless Chromium with one blank tab that keeps what its WebSockets receive; closed on the way out."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="mqttchat-chromium-") as profile:
        args = [
            executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "about:blank",
        ]  # fmt: skip
        env = {**os.environ, "HOME": profile}
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert process.stderr is not None
        try:
            endpoint = await _devtools_endpoint(process.stderr)
            async with connect(endpoint, max_size=None) as socket:
                page = await _attach(socket)
                try:
                    yield page
                finally:
                    page._reader.cancel()
        finally:
            if process.returncode is None:
                process.terminate()
                await wait_or_kill(process)


async def _devtools_endpoint(stderr: asyncio.StreamReader) -> str:
    seen = []
    async with asyncio.timeout(60):
        while line := await stderr.readline():
            text = line.decode(errors="replace").strip()
            seen.append(text)
            if text.startswith("DevTools listening on "):
                return text.removeprefix("DevTools listening on ")
    raise RuntimeError("chromium did not start: " + " | ".join(seen[-10:]))


async def _attach(socket: ClientConnection) -> Page:
    """Attach to the blank tab, give it the capture script, and return it."""
    ids = itertools.count(1_000_000)

    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        ident = next(ids)
        await socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    targets = await call("Target.getTargets", {})
    page_id = next(t["targetId"] for t in targets["targetInfos"] if t["type"] == "page")
    session = (await call("Target.attachToTarget", {"targetId": page_id, "flatten": True}))["sessionId"]
    page = Page(socket, session)
    await page.send("Page.enable")
    await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE_SCRIPT})
    return page
