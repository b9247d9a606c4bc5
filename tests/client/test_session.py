"""ClientSession without I/O: a scripted broker made of protocol objects."""

from __future__ import annotations

import pytest

from mqttchat.client import ClientOptions, PublishError, QueueFull, parse_url
from mqttchat.client.session import (
    ClientSession,
    Connected,
    ConnectRefused,
    Reauthenticated,
    ServerDisconnected,
    SubscribeDone,
)
from mqttchat.protocol import (
    Auth,
    Completed,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketReader,
    Properties,
    PubAck,
    Publish,
    ReasonCode,
    RemoteProtocolError,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)


def sent(session: ClientSession, version: int = 5) -> list[Packet]:
    reader = PacketReader(None)
    data = session.data_to_send()
    return reader.read(data) if data[:1] and data[0] >> 4 == 1 else PacketReader(version).read(data)


def connect(session: ClientSession, connack: ConnAck | None = None) -> list[object]:
    session.start_connection()
    sent(session, session.version)
    return session.receive_data((connack or ConnAck()).encode(session.version))


def make(**options: object) -> ClientSession:
    return ClientSession(ClientOptions(parse_url("mqtt://broker"), **options))  # type: ignore[arg-type]


def test_connect_carries_the_options() -> None:
    session = make(
        client_id="me", clean_start=False, session_expiry=600, keepalive=30, username="u", password="p",
        will=Will("w", b"gone", 1, True), receive_maximum=50, maximum_packet_size=65_536, topic_alias_maximum=5,
        request_response_information=True, request_problem_information=False, user_properties=(("app", "x"),),
    )  # fmt: skip
    session.start_connection()
    (connect_packet,) = sent(session)
    assert isinstance(connect_packet, Connect)
    p = connect_packet.properties
    assert (connect_packet.client_id, connect_packet.clean_start, connect_packet.keep_alive) == ("me", False, 30)
    assert (connect_packet.username, connect_packet.password) == ("u", b"p")
    assert connect_packet.will == Will("w", b"gone", 1, True)
    assert (p.session_expiry_interval, p.receive_maximum, p.maximum_packet_size, p.topic_alias_maximum) == (
        600, 50, 65_536, 5)  # fmt: skip
    assert (p.request_response_information, p.request_problem_information) == (1, 0)
    assert p.user_property == (("app", "x"),)


def test_connack_capabilities_and_server_keep_alive() -> None:
    session = make(keepalive=60)
    props = Properties(receive_maximum=3, maximum_qos=1, retain_available=0, topic_alias_maximum=4,
                       server_keep_alive=20, assigned_client_identifier="auto-1", maximum_packet_size=200)  # fmt: skip
    (event,) = connect(session, ConnAck(False, ReasonCode.SUCCESS, props))
    assert isinstance(event, Connected)
    caps = event.capabilities
    assert (caps.receive_maximum, caps.maximum_qos, caps.retain_available, caps.topic_alias_maximum) == (3, 1, False, 4)
    assert session.keepalive == 20 and session.client_id == "auto-1"
    with pytest.raises(PublishError, match="at most QoS 1"):
        session.publish(Publish("t", b"", 2))
    with pytest.raises(PublishError, match="retained"):
        session.publish(Publish("t", b"", 0, True))
    with pytest.raises(PublishError, match="at most 200"):
        session.publish(Publish("t", b"x" * 300, 1))
    for i in range(5):
        session.publish(Publish("long/topic/name", b"", 1), token=i)
    packets = sent(session)
    assert len(packets) == 3  # the broker's Receive Maximum
    assert packets[0].topic == "long/topic/name" and packets[1].topic == ""  # type: ignore[attr-defined]
    assert packets[1].properties.topic_alias == 1  # type: ignore[attr-defined]


def test_refusal_is_an_event() -> None:
    session = make()
    (event,) = connect(session, ConnAck(False, ReasonCode.NOT_AUTHORIZED, Properties(reason_string="banned")))
    assert isinstance(event, ConnectRefused)
    assert not session.connected


def test_publishes_wait_for_the_connection_in_order_and_the_queue_is_bounded() -> None:
    session = make(max_queued_publishes=4)
    session.publish(Publish("t", b"0", 0))
    session.publish(Publish("t", b"1", 1), token="one")
    session.publish(Publish("t", b"2", 0))
    session.publish(Publish("t", b"3", 2), token="three")
    with pytest.raises(QueueFull):
        session.publish(Publish("t", b"4", 0))
    assert session.data_to_send() == b""
    connect(session)
    assert [p.payload for p in sent(session)] == [b"0", b"1", b"2", b"3"]  # type: ignore[attr-defined]


def test_reconnect_resumes_or_resubscribes() -> None:
    session = make(client_id="c", clean_start=False, session_expiry=60)
    connect(session)
    session.subscribe([Subscription("a/#", 1)], Properties(subscription_identifier=7), token="s")
    (sub,) = sent(session)
    assert isinstance(sub, Subscribe)
    (done,) = session.receive_data(SubAck(sub.packet_id, (ReasonCode.GRANTED_QOS_1,)).encode(5))
    assert isinstance(done, SubscribeDone) and done.token == "s"
    session.publish(Publish("t", b"x", 1), token="p")
    sent(session)
    session.connection_lost()
    # Session kept by the broker: the publish is resent with DUP, nothing resubscribed.
    session.start_connection()
    (reconnect_packet,) = sent(session)
    assert isinstance(reconnect_packet, Connect) and not reconnect_packet.clean_start
    session.receive_data(ConnAck(True).encode(5))
    (resent,) = sent(session)
    assert isinstance(resent, Publish) and resent.dup
    session.connection_lost()
    # Session lost: the subscription is restored with its identifier, the publish restarts as new.
    connect(session, ConnAck(False))
    packets = sent(session)
    assert isinstance(packets[0], Subscribe)
    assert packets[0].subscriptions == (Subscription("a/#", 1),)
    assert packets[0].properties.subscription_identifier == (7,)
    assert isinstance(packets[1], Publish) and not packets[1].dup
    events = session.receive_data(PubAck(packets[1].packet_id).encode(5))  # type: ignore[arg-type]
    assert [e.token for e in events if isinstance(e, Completed)] == ["p"]


def test_failed_subscription_is_not_restored() -> None:
    session = make()
    connect(session)
    session.subscribe([Subscription("ok"), Subscription("denied")])
    (sub,) = sent(session)
    session.receive_data(SubAck(sub.packet_id, (ReasonCode.SUCCESS, ReasonCode.NOT_AUTHORIZED)).encode(5))  # type: ignore[attr-defined]
    assert set(session.subscriptions) == {"ok"}


def test_suback_with_the_wrong_number_of_codes_is_a_protocol_error() -> None:
    session = make()
    connect(session)
    session.subscribe([Subscription("a"), Subscription("b")])
    (sub,) = sent(session)
    with pytest.raises(RemoteProtocolError):
        session.receive_data(SubAck(sub.packet_id, (ReasonCode.SUCCESS,)).encode(5))  # type: ignore[attr-defined]
    (disconnect,) = sent(session)
    assert isinstance(disconnect, Disconnect) and disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


def test_publish_before_connack_is_a_protocol_error() -> None:
    session = make()
    session.start_connection()
    sent(session)
    with pytest.raises(RemoteProtocolError):
        session.receive_data(Publish("t", b"").encode(5))


def test_server_disconnect_with_redirect() -> None:
    session = make()
    connect(session)
    (event,) = session.receive_data(
        Disconnect(ReasonCode.SERVER_MOVED, Properties(server_reference="other:1883")).encode(5)
    )
    assert isinstance(event, ServerDisconnected)
    assert event.disconnect.properties.server_reference == "other:1883"
    assert not session.connected


def test_inbound_topic_alias_and_qos2_dedupe() -> None:
    session = make(topic_alias_maximum=2)
    connect(session)
    first = Publish("long/topic", b"1", 2, packet_id=5, properties=Properties(topic_alias=1))
    events = session.receive_data(first.encode(5))
    assert [e.topic for e in events] == ["long/topic"]  # type: ignore[union-attr]
    dup = Publish("", b"1", 2, False, True, 5, Properties(topic_alias=1))
    assert session.receive_data(dup.encode(5)) == []  # QoS 2 duplicate: not delivered twice
    assert [type(p).__name__ for p in sent(session)] == ["PubRec", "PubRec"]


class Scram:
    name = "TEST-CHALLENGE"

    def initial_data(self) -> bytes | None:
        return b"hello"

    def respond(self, data: bytes | None) -> bytes | None:
        return (data or b"")[::-1]


def test_enhanced_authentication_exchange() -> None:
    session = ClientSession(ClientOptions(parse_url("mqtt://b")), auth=Scram())
    session.start_connection()
    (connect_packet,) = sent(session)
    assert connect_packet.properties.authentication_method == "TEST-CHALLENGE"  # type: ignore[attr-defined]
    assert connect_packet.properties.authentication_data == b"hello"  # type: ignore[attr-defined]
    challenge = Auth(ReasonCode.CONTINUE_AUTHENTICATION,
                     Properties(authentication_method="TEST-CHALLENGE", authentication_data=b"abc"))  # fmt: skip
    assert session.receive_data(challenge.encode(5)) == []
    (answer,) = sent(session)
    assert isinstance(answer, Auth) and answer.properties.authentication_data == b"cba"
    assert isinstance(session.receive_data(ConnAck().encode(5))[0], Connected)
    session.reauthenticate()
    (reauth,) = sent(session)
    assert isinstance(reauth, Auth) and reauth.reason_code == ReasonCode.RE_AUTHENTICATE
    done = session.receive_data(Auth(ReasonCode.SUCCESS, Properties(authentication_method="TEST-CHALLENGE")).encode(5))
    assert isinstance(done[0], Reauthenticated)


def test_v311_session_uses_a_window_of_20() -> None:
    session = make(version=4)
    connect(session)
    for i in range(25):
        session.publish(Publish("t", b"", 1), i)
    assert len(sent(session, 4)) == 20


def test_urls() -> None:
    t = parse_url("wss://user:p%40ss@broker.example:8084/ws/mqtt?x=1")
    assert (t.host, t.port, t.tls, t.websocket, t.path, t.username, t.password) == (
        "broker.example", 8084, True, True, "/ws/mqtt?x=1", "user", "p@ss")  # fmt: skip
    assert parse_url("broker").url == "mqtt://broker:1883"
    assert parse_url("mqtts://h").port == 8883
    assert parse_url("ws://h").path == "/mqtt"
    assert parse_url("mqtt://[::1]:1884").url == "mqtt://[::1]:1884"
    for bad, message in (
        ("http://h", "unknown URL scheme"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:99999", "bad port"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_url(bad)


def test_a_big_read_is_handled_in_turns_without_losing_or_reordering() -> None:
    """max_packets stops after that many packets and says more is buffered; b"" goes on where it stopped."""
    session = make()
    connect(session)
    data = b"".join(Publish(f"t/{i}", b"%d" % i, 1, packet_id=i + 1).encode(5) for i in range(1200))
    data += Publish("t/partial", b"x" * 100, 0).encode(5)[:20]  # and the start of one more
    first = session.receive_data(data, 500)
    assert len(first) == 500 and session.more_buffered
    second = session.receive_data(b"", 500)
    assert len(second) == 500 and session.more_buffered
    third = session.receive_data(b"", 500)
    assert len(third) == 200 and not session.more_buffered  # a partial packet waits for its bytes, as always
    payloads = [e.payload for e in [*first, *second, *third]]  # type: ignore[union-attr]
    assert payloads == [b"%d" % i for i in range(1200)]
    assert len(sent(session)) == 1200  # every QoS 1 message acknowledged
