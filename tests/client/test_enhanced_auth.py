"""MQTT 5 enhanced authentication in the client session, against a SCRAM server made with ``scramp`` in memory:
SCRAM-SHA-1/256/512 logins, re-authentication, a tampered server signature, and one-step token methods."""

from __future__ import annotations

import pytest
from scramp import ScramMechanism

from mqttchat.client import ClientOptions, parse_url
from mqttchat.client.auth import ScramAuth, ServerAuthenticationFailed, TokenAuth
from mqttchat.client.session import ClientSession, Connected, Reauthenticated
from mqttchat.protocol import Auth, ConnAck, Connect, Packet, PacketReader, Properties, ReasonCode, RemoteProtocolError


def sent(session: ClientSession) -> list[Packet]:
    data = session.data_to_send()
    return PacketReader(None).read(data) if data[:1] and data[0] >> 4 == 1 else PacketReader(5).read(data)


class ScramBroker:
    """The broker's half of SCRAM, with scramp's server, for one user."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self.mechanism = ScramMechanism(mechanism)
        self.name = mechanism
        self.stored = {user: self.mechanism.make_auth_info(password)}

    def challenge(self, client_first: bytes) -> Auth:
        self.server = self.mechanism.make_server(lambda name: self.stored[name])
        self.server.set_client_first(client_first.decode())
        data = self.server.get_server_first().encode()
        return Auth(ReasonCode.CONTINUE_AUTHENTICATION, self.props(data))

    def final(self, client_final: bytes) -> bytes:
        self.server.set_client_final(client_final.decode())  # raises on a wrong proof
        return str(self.server.get_server_final()).encode()

    def props(self, data: bytes) -> Properties:
        return Properties(authentication_method=self.name, authentication_data=data)


def login(session: ClientSession, broker: ScramBroker) -> bytes:
    """Run CONNECT, AUTH 0x18 both ways; return the server-final data the CONNACK should carry."""
    session.start_connection()
    (connect,) = sent(session)
    assert isinstance(connect, Connect) and connect.properties.authentication_method == broker.name
    assert connect.password is None  # the password never travels
    assert session.receive_data(broker.challenge(connect.properties.authentication_data or b"").encode(5)) == []
    (answer,) = sent(session)
    assert isinstance(answer, Auth) and answer.reason_code == ReasonCode.CONTINUE_AUTHENTICATION
    return broker.final(answer.properties.authentication_data or b"")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_login_and_reauthentication(mechanism: str) -> None:
    broker = ScramBroker(mechanism, "alice", "pässword")
    session = ClientSession(
        ClientOptions(parse_url("mqtt://b"), username="alice"), ScramAuth("alice", "pässword", mechanism)
    )
    server_final = login(session, broker)
    events = session.receive_data(ConnAck(properties=broker.props(server_final)).encode(5))
    assert isinstance(events[0], Connected)
    # Re-authentication: AUTH 0x19 with a new client-first, the challenge, and AUTH Success with server-final.
    session.reauthenticate()
    (reauth,) = sent(session)
    assert isinstance(reauth, Auth) and reauth.reason_code == ReasonCode.RE_AUTHENTICATE
    session.receive_data(broker.challenge(reauth.properties.authentication_data or b"").encode(5))
    (answer,) = sent(session)
    final = broker.final(answer.properties.authentication_data or b"")
    done = session.receive_data(Auth(ReasonCode.SUCCESS, broker.props(final)).encode(5))
    assert isinstance(done[0], Reauthenticated)


def test_wrong_password_fails_at_the_broker() -> None:
    broker = ScramBroker("SCRAM-SHA-256", "alice", "right")
    session = ClientSession(ClientOptions(parse_url("mqtt://b")), ScramAuth("alice", "wrong"))
    with pytest.raises(Exception, match=r"(?i)proof|signature|invalid"):
        login(session, broker)


def test_a_tampered_server_signature_is_refused() -> None:
    broker = ScramBroker("SCRAM-SHA-256", "alice", "pw")
    session = ClientSession(ClientOptions(parse_url("mqtt://b")), ScramAuth("alice", "pw"))
    server_final = login(session, broker)
    tampered = server_final[:-4] + (b"AAA=" if not server_final.endswith(b"AAA=") else b"BBB=")
    with pytest.raises(ServerAuthenticationFailed, match="SCRAM server signature is wrong"):
        session.receive_data(ConnAck(properties=broker.props(tampered)).encode(5))
    assert not session.connected


def test_a_missing_server_signature_is_refused() -> None:
    broker = ScramBroker("SCRAM-SHA-256", "alice", "pw")
    session = ClientSession(ClientOptions(parse_url("mqtt://b")), ScramAuth("alice", "pw"))
    login(session, broker)
    with pytest.raises(ServerAuthenticationFailed, match="without its server signature"):
        session.receive_data(ConnAck(properties=Properties(authentication_method="SCRAM-SHA-256")).encode(5))


def test_token_method_is_one_step_and_fresh_each_time() -> None:
    tokens = iter([("token-1", 1000.0), ("token-2", 2000.0)])
    auth = TokenAuth("OAUTH2-JWT", lambda: next(tokens), clock=lambda: 400.0)
    session = ClientSession(ClientOptions(parse_url("mqtt://b")), auth)
    session.start_connection()
    (connect,) = sent(session)
    assert isinstance(connect, Connect)
    assert connect.properties.authentication_method == "OAUTH2-JWT"
    assert connect.properties.authentication_data == b"token-1"
    assert auth.expires_at == 1000.0 and auth.renew_before() == 60  # a tenth of its 600 s
    session.receive_data(ConnAck().encode(5))
    session.reauthenticate()
    (reauth,) = sent(session)
    assert isinstance(reauth, Auth) and reauth.properties.authentication_data == b"token-2"
    assert auth.expires_at == 2000.0
    challenge = Auth(ReasonCode.CONTINUE_AUTHENTICATION, Properties(authentication_method="OAUTH2-JWT"))
    with pytest.raises(RemoteProtocolError, match="has one step"):
        session.receive_data(challenge.encode(5))


async def test_client_reauthenticates_before_the_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an injected clock: no AUTH before the margin, AUTH 0x19 with a new token once within it."""
    import asyncio

    import mqttchat.client.client as client_module
    from mqttchat.client import MQTTClient
    from tests.helpers.fake_broker import connack_then, fake_broker

    monkeypatch.setattr(client_module, "RENEW_CHECK_INTERVAL", 0.02)
    now = [1000.0]
    issued: list[str] = []

    def token() -> tuple[str, float]:
        issued.append(f"token-{len(issued) + 1}")
        return issued[-1], now[0] + 600

    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Auth):
            return Auth(ReasonCode.SUCCESS, Properties(authentication_method="CUSTOM-JWT")).encode(5)
        return b""

    auth = TokenAuth("CUSTOM-JWT", token, clock=lambda: now[0])
    with fake_broker(connack_then(answer)) as broker:
        async with MQTTClient(ClientOptions(parse_url(f"mqtt://127.0.0.1:{broker.port}"), auth=auth)) as client:
            now[0] += 530  # 70 s left, the margin is 60 s
            await asyncio.sleep(0.1)
            assert not any(isinstance(p, Auth) for p in broker.received)
            now[0] += 20
            async with asyncio.timeout(5):
                while not any(isinstance(p, Auth) for p in broker.received):
                    await asyncio.sleep(0.02)
            (reauth,) = [p for p in broker.received if isinstance(p, Auth)]
            assert reauth.reason_code == ReasonCode.RE_AUTHENTICATE
            assert reauth.properties.authentication_data == b"token-2"
            assert getattr(client.session.auth, "expires_at", None) == now[0] + 600 and client.connected


def test_clients_sharing_options_do_not_share_an_exchange() -> None:
    """The app's explorer and chat connect with the same options: each client runs its own SCRAM exchange."""
    from mqttchat.client import MQTTClient

    options = ClientOptions(parse_url("mqtt://b"), auth=ScramAuth("alice", "pw"))
    one, two = MQTTClient(options), MQTTClient(options)
    assert one.session.auth is not two.session.auth
    broker = ScramBroker("SCRAM-SHA-256", "alice", "pw")
    first = login(one.session, broker)
    second_broker = ScramBroker("SCRAM-SHA-256", "alice", "pw")
    login(two.session, second_broker)  # a second exchange meanwhile does not disturb the first
    assert isinstance(one.session.receive_data(ConnAck(properties=broker.props(first)).encode(5))[0], Connected)
