"""``mqttchat serve``'s guards, in process with aiohttp's test client: the token off loopback, loopback's Host check,
the Origin check on the WebSocket, the limit on browser tabs; and the command's checks of the app's options."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from mqttchat.ui.browser import COOKIE, BrowserServer, is_loopback
from tests.helpers.cli import run

#: An app for the server to run: says it is ready as a Textual app does, then waits for its quit message.
FAKE_APP = Path(__file__).parent / "helpers" / "fake_web_app.py"


@pytest.fixture
def command() -> str:
    return f"{sys.executable} {FAKE_APP}"


async def client_for(server: BrowserServer) -> TestClient:
    client = TestClient(TestServer(await server._make_app()))
    await client.start_server()
    return client


@pytest.fixture
async def off_loopback(command: str) -> AsyncIterator[TestClient]:
    """A server configured for 0.0.0.0 (a token needed), tested through a loopback socket."""
    client = await client_for(BrowserServer(command, "0.0.0.0", 0, token="s3cret-token"))
    yield client
    await client.close()


async def test_off_loopback_every_request_needs_the_token(off_loopback: TestClient) -> None:
    for path in ("/", "/?token=wrong", "/static/js/textual.js", "/ws", "/?token="):
        response = await off_loopback.get(path)
        assert response.status == 403, path
        assert "token" in await response.text()
    response = await off_loopback.get("/?token=s3cret-token")
    assert response.status == 200
    cookie = response.cookies[COOKIE]
    assert cookie.value == "s3cret-token" and cookie["httponly"] and cookie["samesite"] == "Strict"
    # The page's own requests carry the cookie, not the token.
    assert (await off_loopback.get("/static/js/textual.js")).status == 200


def test_a_server_off_loopback_without_a_token_is_refused(command: str) -> None:
    with pytest.raises(ValueError, match="needs a token"):
        BrowserServer(command, "0.0.0.0", 0)
    BrowserServer(command, "127.0.0.1", 0)  # loopback: none needed


def test_which_addresses_are_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.10", "example.com", ""]))


async def test_on_loopback_a_page_reached_through_another_host_name_is_refused(command: str) -> None:
    """DNS rebinding: a site whose name points at 127.0.0.1 must not reach the server from the user's browser."""
    client = await client_for(BrowserServer(command, "127.0.0.1", 0))
    try:
        assert (await client.get("/", headers={"Host": "attacker.example:8000"})).status == 403
        assert (await client.get("/", headers={"Host": f"localhost:{client.port}"})).status == 200
        page = await client.get("/")
        assert page.status == 200
        # The page is told the address it came from (the port may have been 0).
        assert f"127.0.0.1:{client.port}/ws" in await page.text()
    finally:
        await client.close()


async def test_a_page_of_another_site_cannot_open_the_websocket(command: str) -> None:
    client = await client_for(BrowserServer(command, "127.0.0.1", 0))
    try:
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/ws", headers={"Origin": "http://attacker.example"})
        assert refused.value.status == 403
        socket = await client.ws_connect("/ws", headers={"Origin": f"http://127.0.0.1:{client.port}"})
        await socket.close()
    finally:
        await client.close()


async def test_browser_tabs_beyond_the_limit_are_refused(command: str) -> None:
    server = BrowserServer(command, "127.0.0.1", 0, max_sessions=1)
    client = await client_for(server)
    try:
        first = await client.ws_connect("/ws")
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/ws")
        assert refused.value.status == 503
        await first.close()
    finally:
        await client.close()
    assert server.sessions == 0


def test_serve_checks_the_apps_options_before_serving(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    result = run("serve", "--port", "0", "--profile", "nosuch", timeout=60)
    assert result.returncode == 2
    assert b"mqttchat serve: no profile 'nosuch'" in result.stderr
    result = run("serve", "--port", "0", "--", "--qos", "7", timeout=60)
    assert result.returncode == 2 and b"mqttchat serve:" in result.stderr and b"qos" in result.stderr


def test_serve_says_how_to_install_textual_serve_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mqttchat.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setitem(sys.modules, "textual_serve", None)
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    monkeypatch.delitem(sys.modules, "mqttchat.ui.browser", raising=False)
    assert main(["serve", "--port", "0", "mqtt://127.0.0.1:1883"]) == 2
    assert "pip install 'mqttchat[serve]'" in capsys.readouterr().err
