"""Profiles with a proxy, ALPN, enhanced authentication and a cloud preset: read, checked, written, connected."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mqttchat.client.auth import ScramAuth, TokenAuth
from mqttchat.config import ConfigError, Profile, ProfileStore
from mqttchat.protocol import ProtocolVersion

KEY = base64.b64encode(b"k" * 32).decode()
HUB = "contoso.azure-devices.net"


def store_with(tmp_path: Path, text: str) -> ProfileStore:
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    store = ProfileStore(path)
    store.load()
    return store


def test_proxy_alpn_and_cloud_from_the_file(tmp_path: Path) -> None:
    store = store_with(
        tmp_path,
        f"""
[profiles.hub]
url = "mqtts://{HUB}"
client_id = "dev1"
proxy = "socks5h://bastion:1080"
[profiles.hub.tls]
alpn = ["mqtt"]
[profiles.hub.cloud]
kind = "azure-iot-hub"
shared_access_key = "${{HUB_KEY}}"
sas_ttl = 600
""",
    )
    profile = store.get("hub")
    assert profile is not None and profile.cloud == "azure-iot-hub"
    options = profile.to_client_options({"HUB_KEY": KEY})
    assert options.target.url == f"mqtts://{HUB}:8883" and options.client_id == "dev1"
    assert options.version == ProtocolVersion.MQTT_3_1_1 and not options.version_fallback
    assert options.proxy is not None and options.proxy.url == "socks5h://bastion:1080"
    assert options.credentials is not None
    assert (options.credentials.credentials().username or "").startswith(f"{HUB}/dev1/?api-version=")
    # The default '#' is what IoT Hub closes connections for: the device's own topic instead, and why.
    subscriptions, changes = profile.guarded_subscriptions()
    assert subscriptions == (("devices/dev1/messages/devicebound/#", 1),)
    assert "Azure IoT Hub closes the connection" in changes[0]
    # Saved again: the ${HUB_KEY} reference is kept, a literal key is not written.
    store.save_profile(profile)
    assert "${HUB_KEY}" in store.path.read_text()
    literal = Profile("lit", f"mqtts://{HUB}", client_id="d", cloud="azure-iot-hub",
                      cloud_options=(("shared_access_key", KEY),))  # fmt: skip
    store.save_profile(literal)
    assert KEY not in store.path.read_text()


def test_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profiles\.toml:4.*kind must be one of") as info:
        store_with(tmp_path, '[profiles.x]\nurl = "mqtts://h"\n[profiles.x.cloud]\nkind = "gcp"\n')
    assert info.value.line == 4
    with pytest.raises(ConfigError, match=r"unknown key 'regoin'.*did you mean 'region'"):
        store_with(tmp_path, '[profiles.x]\nurl = "mqtts://h"\n[profiles.x.cloud]\nkind = "aws-iot"\nregoin = "x"\n')
    with pytest.raises(ConfigError, match="a cloud service is reached with TLS"):
        store_with(tmp_path, '[profiles.x]\nurl = "mqtt://h"\n[profiles.x.cloud]\nkind = "hivemq-cloud"\n')
    with pytest.raises(ConfigError, match=r":3.*unknown proxy scheme"):
        store_with(tmp_path, '[profiles.x]\nurl = "mqtt://h"\nproxy = "ftp://p"\n')
    with pytest.raises(ConfigError, match="enhanced authentication needs MQTT 5"):
        store_with(tmp_path, '[profiles.x]\nurl = "mqtt://h"\nversion = 311\nauth_method = "SCRAM-SHA-256"\n')


def test_enhanced_authentication_from_a_profile() -> None:
    scram = Profile("s", "mqtt://u:pw@h", auth_method="SCRAM-SHA-512").to_client_options()
    assert isinstance(scram.auth, ScramAuth) and scram.auth.name == "SCRAM-SHA-512"
    assert scram.effective_password is None and scram.effective_username == "u"  # the password never travels
    assert not scram.version_fallback
    token = Profile("t", "mqtt://h", auth_method="OAUTH2-JWT", auth_token="${TOKEN}").to_client_options(
        {"TOKEN": "abc"}
    )
    assert isinstance(token.auth, TokenAuth) and token.auth.initial_data() == b"abc"
    assert Profile("t", "mqtt://h", auth_method="OAUTH2-JWT").validate()["auth_token"].startswith("OAUTH2-JWT needs")


def test_proxy_none_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"ALL_PROXY": "socks5://envproxy:1080"}
    assert Profile("p", "mqtt://h").to_client_options(env).proxy is not None
    assert Profile("p", "mqtt://h", proxy="none").to_client_options(env).proxy is None
