"""The broker's admission rules as pure functions (mqttchat.broker.admission): a CONNECT and a configuration in,
a refusal or the negotiated terms out; no connection, no clock."""

from __future__ import annotations

import dataclasses
from typing import Any

from mqttchat.broker import admission
from mqttchat.broker.admission import Credentials, Refusal
from mqttchat.broker.config import BrokerConfig, default_config
from mqttchat.broker.logins import Verdict
from mqttchat.broker.session import NEVER_EXPIRES
from mqttchat.protocol import ConnAck, Connect, Properties, ReasonCode, Will


def config(**overrides: Any) -> BrokerConfig:
    return dataclasses.replace(default_config(), **overrides)


def test_what_the_broker_does_not_do_is_refused_in_order() -> None:
    assert admission.check_request(Connect("c", protocol_version=3), config()) == Refusal(
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, "MQTT 3.1 is not supported; use 3.1.1 or 5"
    )
    will = Will("w", b"x" * 10, qos=2, retain=True)
    refused = admission.check_request(Connect("c", will=will), config(maximum_qos=1, retain_available=False))
    assert refused is not None and refused.reason is ReasonCode.QOS_NOT_SUPPORTED
    refused = admission.check_request(Connect("c", will=will), config(retain_available=False))
    assert refused is not None and refused.reason is ReasonCode.RETAIN_NOT_SUPPORTED
    refused = admission.check_request(Connect("c", will=Will("w", b"x" * 10)), config(message_size_limit=9))
    assert refused is not None and (refused.reason, refused.v311_code) == (ReasonCode.PACKET_TOO_LARGE, 0x05)
    scram = Connect("c", properties=Properties(authentication_method="SCRAM-SHA-1"))
    refused = admission.check_request(scram, config())
    assert refused is not None and refused.reason is ReasonCode.BAD_AUTHENTICATION_METHOD
    assert admission.check_request(Connect("c", will=will), config()) is None


def test_capacity_counts_the_broker_and_the_listener() -> None:
    assert admission.check_capacity(config(max_connections=2), 1, 1, "l", -1) is None
    assert admission.check_capacity(config(max_connections=2), 2, 0, "l", -1) is not None
    refused = admission.check_capacity(config(), 5, 3, "tcp:x", 3)
    assert refused is not None and refused.why == "too many connections on listener tcp:x"


def test_credentials_and_login_verdicts() -> None:
    anonymous = Connect("c")
    with_password = Connect("c", username="u", password=b"p")
    assert admission.check_credentials(anonymous, config(), None) is Credentials.ADMITTED
    assert isinstance(admission.check_credentials(anonymous, config(allow_anonymous=False), None), Refusal)
    assert admission.check_credentials(with_password, config(), object()) is Credentials.CHECK_PASSWORD
    assert isinstance(admission.check_credentials(Connect("c", username="u"), config(), object()), Refusal)
    assert admission.check_credentials(with_password, config(), None) is Credentials.ADMITTED  # an unchecked claim
    assert admission.login_refusal(Verdict.BUSY).quiet and admission.login_refusal(Verdict.RATE_LIMITED).quiet
    assert admission.login_refusal(Verdict.REFUSED).reason is ReasonCode.BAD_USER_NAME_OR_PASSWORD


def test_terms_announce_the_configuration_and_bound_the_client() -> None:
    connect = Connect("c", keep_alive=0, properties=Properties(receive_maximum=10, topic_alias_maximum=500,
                                                                session_expiry_interval=30))  # fmt: skip
    terms = admission.negotiate(connect, config(max_keepalive=60, max_inflight_messages=20, max_topic_alias=7), None)
    assert terms is not None
    assert (terms.keepalive, terms.window, terms.aliases_in, terms.aliases_out, terms.expiry) == (60, 10, 7, 64, 30)
    assert terms.connack_properties.server_keep_alive == 60
    assert terms.connack_properties.topic_alias_maximum == 7
    old = admission.negotiate(Connect("c", keep_alive=0, clean_start=False, protocol_version=4),
                              config(max_keepalive=60), None)  # fmt: skip
    assert old is not None and (old.keepalive, old.expiry, old.aliases_out) == (0, NEVER_EXPIRES, 0)


def test_a_connack_too_large_for_the_client_drops_the_alias_maximum_then_gives_up() -> None:
    full = admission.negotiate(Connect("c"), config(max_topic_alias=10, maximum_qos=1), "assigned-id")
    assert full is not None
    size = len(ConnAck(False, ReasonCode.SUCCESS, full.connack_properties).encode(5))
    tight = admission.negotiate(Connect("c", properties=Properties(maximum_packet_size=size - 1)),
                                config(max_topic_alias=10, maximum_qos=1), "assigned-id")  # fmt: skip
    assert tight is not None and tight.aliases_in == 0 and tight.connack_properties.topic_alias_maximum is None
    assert admission.negotiate(Connect("c", properties=Properties(maximum_packet_size=8)), config(), "id") is None
