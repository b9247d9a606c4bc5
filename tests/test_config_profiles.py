"""Connection profiles (profiles.toml) and app settings (settings.toml): reading, writing, checking, converting."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from mqttchat.client.options import TLSOptions
from mqttchat.config import (
    DEFAULT_PROFILE,
    AppSettings,
    ConfigError,
    Profile,
    ProfileError,
    ProfileStore,
    config_dir,
    data_dir,
    expand_env,
    install_id,
    load_settings,
    save_settings,
    settings_path,
)
from mqttchat.protocol import ProtocolVersion, Will

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Point platformdirs at tmp_path: the XDG variables (read on each call on Linux), and the functions
    themselves for other platforms, so that no test touches the real home directory."""
    config_home, data_home = tmp_path / "xdg-config", tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setattr(platformdirs, "user_config_path", lambda appname=None, *a, **k: config_home / str(appname))
    monkeypatch.setattr(platformdirs, "user_data_path", lambda appname=None, *a, **k: data_home / str(appname))
    return config_home / "mqttchat", data_home / "mqttchat"


@pytest.fixture
def cfg(dirs: tuple[Path, Path]) -> Path:
    return dirs[0]


def write_profiles(cfg: Path, text: str) -> Path:
    cfg.mkdir(parents=True, exist_ok=True)
    path = cfg / "profiles.toml"
    path.write_text(text, encoding="utf-8")
    return path


def default_of(store: ProfileStore) -> str | None:
    """The store's default name, read through a call so that mypy does not narrow it across changes."""
    return store.default_name


def load_error(cfg: Path, text: str) -> ConfigError:
    path = write_profiles(cfg, text)
    store = ProfileStore()
    with pytest.raises(ConfigError) as info:
        store.load()
    assert info.value.file == str(path)
    return info.value


def full_profile(cfg: Path) -> Profile:
    return Profile(
        name="work",
        url="mqtts://broker.example.com:8883",
        version=5,
        client_id="me-1",
        username="alice",
        password="${MQTT_PASSWORD}",
        keepalive=30,
        clean_start=False,
        session_expiry=3600,
        subscriptions=(("#", 0), ("$SYS/#", 0), ("home/+/temp", 1), ("$share/g/jobs/#", 2)),
        ca_file=str(cfg / "ca.pem"),
        cert_file=str(cfg / "certs" / "client.pem"),
        key_file="/elsewhere/client.key",
        insecure=True,
        server_hostname="broker.internal",
        will_topic="clients/me/status",
        will_payload="offline ✝",
        will_qos=1,
        will_retain=True,
    )


# --------------------------------------------------------------------------------------------------------------
# Directories and missing files


def test_directories_come_from_platformdirs_and_are_created(dirs: tuple[Path, Path]) -> None:
    config, data = dirs
    assert not config.exists()
    assert config_dir() == config
    assert config.is_dir()
    assert data_dir() == data
    assert data.is_dir()
    assert ProfileStore().path == config / "profiles.toml"
    assert settings_path() == config / "settings.toml"


def test_install_id_is_made_once_and_kept(dirs: tuple[Path, Path]) -> None:
    _, data = dirs
    first = install_id()
    assert len(first) == 12 and int(first, 16) >= 0
    assert (data / "install-id").read_text() == first + "\n"
    assert install_id() == first  # the next run finds it
    (data / "install-id").write_text("not an id\n")
    replaced = install_id()  # a damaged file is replaced
    assert replaced != "not an id" and install_id() == replaced


def test_install_id_when_it_cannot_be_kept(tmp_path: Path) -> None:
    (tmp_path / "mqttchat").write_text("a file where the directory should be")
    one, two = install_id(tmp_path / "mqttchat"), install_id(tmp_path / "mqttchat")
    assert len(one) == 12 and int(one, 16) >= 0 and one != two  # valid, for this run only


def test_platformdirs_follows_xdg_variables_here(tmp_path: Path) -> None:
    """The autouse fixture also patches the functions; the XDG variables alone suffice on Linux."""
    if not sys.platform.startswith("linux"):
        pytest.skip("XDG variables are read on Linux")
    from platformdirs.unix import Unix

    assert Unix("mqttchat").user_config_path == tmp_path / "xdg-config" / "mqttchat"


def test_missing_file_means_no_profiles(cfg: Path) -> None:
    store = ProfileStore()
    store.load()
    assert store.profiles() == []
    assert store.default_name is None
    assert store.get("local") is None
    assert store.default_profile() == DEFAULT_PROFILE
    assert not cfg.exists()  # loading creates nothing


def test_empty_file_means_no_profiles(cfg: Path) -> None:
    write_profiles(cfg, "# nothing yet\n")
    store = ProfileStore()
    store.load()
    assert store.profiles() == []


def test_default_profile_constant() -> None:
    assert DEFAULT_PROFILE.name == "local"
    assert DEFAULT_PROFILE.url == "mqtt://127.0.0.1:1883"
    assert DEFAULT_PROFILE.validate() == {}
    options = DEFAULT_PROFILE.to_client_options(environ={})
    assert options.target.host == "127.0.0.1"
    assert options.target.port == 1883
    assert options.tls is None


# --------------------------------------------------------------------------------------------------------------
# Round trips


def test_full_profile_round_trip(cfg: Path) -> None:
    profile = full_profile(cfg)
    assert profile.validate() == {}
    ProfileStore().save_profile(profile, make_default=True)
    store = ProfileStore()
    store.load()
    assert store.profiles() == [profile]
    assert store.get("work") == profile
    assert store.default_name == "work"
    assert store.default_profile() == profile
    data = tomllib.loads((cfg / "profiles.toml").read_text())
    table = data["profiles"]["work"]
    assert data["default"] == "work"
    assert table["password"] == "${MQTT_PASSWORD}"
    # Files in the config directory are written relative to it; others as given.
    assert table["tls"] == {
        "ca_file": "ca.pem",
        "cert_file": "certs/client.pem",
        "key_file": "/elsewhere/client.key",
        "insecure": True,
        "server_hostname": "broker.internal",
    }
    assert table["subscriptions"] == [
        "#",
        "$SYS/#",
        {"filter": "home/+/temp", "qos": 1},
        {"filter": "$share/g/jobs/#", "qos": 2},
    ]
    assert table["will"] == {"topic": "clients/me/status", "payload": "offline ✝", "qos": 1, "retain": True}


def test_saved_literal_password_round_trip(cfg: Path) -> None:
    profile = Profile("p", url="mqtt://bob:url-secret@h", username="bob", password="s3cret", save_password=True)
    store = ProfileStore()
    store.save_profile(profile)
    assert store.get("p") == profile
    again = ProfileStore()
    again.load()
    assert again.get("p") == profile
    text = (cfg / "profiles.toml").read_text()
    assert "s3cret" in text
    assert "url-secret" in text


def test_minimal_profile_gets_defaults(cfg: Path) -> None:
    write_profiles(cfg, 'default = "x"\n[profiles.x]\n')
    store = ProfileStore()
    store.load()
    assert store.get("x") == Profile("x")
    assert store.default_profile() == Profile("x")


def test_example_file_from_the_documentation(cfg: Path) -> None:
    write_profiles(
        cfg,
        """\
default = "local"

[profiles.local]
url = "mqtt://127.0.0.1:1883"
version = 5
client_id = ""
username = "alice"
password = "${MQTT_PASSWORD}"
keepalive = 60
clean_start = true
session_expiry = 0
subscriptions = ["#", "$SYS/#"]
[profiles.local.will]
topic = "clients/me/status"
payload = "offline"
qos = 1
retain = true

[profiles.tls]
url = "mqtts://broker:8883"
subscriptions = [{ filter = "home/#", qos = 1 }]
[profiles.tls.tls]
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
insecure = false
server_hostname = ""
""",
    )
    store = ProfileStore()
    store.load()
    local, tls = store.profiles()
    assert local == Profile(
        "local",
        username="alice",
        password="${MQTT_PASSWORD}",
        subscriptions=(("#", 0), ("$SYS/#", 0)),
        will_topic="clients/me/status",
        will_payload="offline",
        will_qos=1,
        will_retain=True,
    )
    assert tls.subscriptions == (("home/#", 1),)
    assert tls.ca_file == str(cfg / "ca.pem")
    assert tls.server_hostname is None  # "" means unset
    assert store.default_profile() == local


def test_profile_names_that_need_quotes(cfg: Path) -> None:
    profile = Profile('my "home" broker.lan')
    ProfileStore().save_profile(profile)
    store = ProfileStore()
    store.load()
    assert store.names() == ['my "home" broker.lan']
    write_profiles(cfg, '[profiles."my home"]\nkeepalive = "x"\n')
    error = load_error(cfg, '[profiles."my home"]\nkeepalive = "x"\n')
    assert error.key == 'profiles."my home".keepalive'
    assert error.line == 2


def test_save_replaces_in_place_and_keeps_other_profiles_as_written(cfg: Path) -> None:
    path = write_profiles(
        cfg,
        """\
default = "a"
[profiles.a]
url = "mqtts://a:8883"
tls.ca_file = "certs/ca.pem"
[profiles.b]
url = "mqtt://b"
""",
    )
    store = ProfileStore()
    store.save_profile(Profile("c", url="mqtt://c"))
    store.save_profile(Profile("b", url="mqtt://b2"))
    assert [p.name for p in store.profiles()] == ["a", "b", "c"]
    assert store.get("b") == Profile("b", url="mqtt://b2")
    data = tomllib.loads(path.read_text())
    assert data["default"] == "a"
    assert data["profiles"]["a"] == {"url": "mqtts://a:8883", "tls": {"ca_file": "certs/ca.pem"}}


def test_save_reads_the_file_again_first(cfg: Path) -> None:
    store = ProfileStore()
    store.save_profile(Profile("a"))
    # Someone edits the file meanwhile.
    path = cfg / "profiles.toml"
    path.write_text(path.read_text() + '\n[profiles.manual]\nurl = "mqtt://m"\n')
    store.save_profile(Profile("b"))
    assert store.names() == ["a", "manual", "b"]


def test_save_does_not_overwrite_a_broken_file(cfg: Path) -> None:
    path = write_profiles(cfg, "[profiles.a\n")
    with pytest.raises(ConfigError):
        ProfileStore().save_profile(Profile("b"))
    assert path.read_text() == "[profiles.a\n"


def test_save_rejects_an_invalid_profile(cfg: Path) -> None:
    with pytest.raises(ProfileError) as info:
        ProfileStore().save_profile(Profile("bad", keepalive=-1, url="gopher://x"))
    assert set(info.value.problems) == {"keepalive", "url"}
    assert "profile 'bad'" in str(info.value)
    assert not (cfg / "profiles.toml").exists()


def test_write_is_atomic_and_leaves_no_temporary_files(cfg: Path) -> None:
    store = ProfileStore()
    for index in range(3):
        store.save_profile(Profile(f"p{index}"))
    assert sorted(p.name for p in cfg.iterdir()) == ["profiles.toml"]


@posix_only
def test_a_symlinked_file_is_followed(cfg: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "profiles.toml"
    real.parent.mkdir()
    real.write_text("")
    cfg.mkdir(parents=True)
    (cfg / "profiles.toml").symlink_to(real)
    ProfileStore().save_profile(Profile("a"))
    assert (cfg / "profiles.toml").is_symlink()
    assert "[profiles.a]" in real.read_text()


def test_store_with_an_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "p.toml"
    store = ProfileStore(path)
    store.save_profile(Profile("a", url="mqtts://h", ca_file=str(tmp_path / "elsewhere" / "ca.pem")))
    assert tomllib.loads(path.read_text())["profiles"]["a"]["tls"] == {"ca_file": "ca.pem"}
    again = ProfileStore(path)
    again.load()
    assert again.get("a") == store.get("a")


# --------------------------------------------------------------------------------------------------------------
# Default profile, deleting


def test_default_profile_selection(cfg: Path) -> None:
    store = ProfileStore()
    store.save_profile(Profile("a", url="mqtt://a"))
    assert default_of(store) is None
    assert store.default_profile() == DEFAULT_PROFILE
    store.save_profile(Profile("local", url="mqtt://my-local"))
    assert store.default_profile() == Profile("local", url="mqtt://my-local")
    store.save_profile(Profile("b", url="mqtt://b"), make_default=True)
    assert default_of(store) == "b"
    store.save_profile(Profile("a", url="mqtt://a2"))  # saving another profile keeps the default
    assert default_of(store) == "b"
    store.set_default("a")
    assert store.default_profile() == Profile("a", url="mqtt://a2")
    with pytest.raises(KeyError):
        store.set_default("nope")
    store.set_default(None)
    assert "default" not in tomllib.loads((cfg / "profiles.toml").read_text())


def test_default_naming_no_profile_is_an_error(cfg: Path) -> None:
    error = load_error(cfg, 'default = "nope"\n[profiles.a]\n')
    assert error.line == 1
    assert error.key == "default"
    assert "there is no profile 'nope'" in str(error)


def test_delete_profile(cfg: Path) -> None:
    store = ProfileStore()
    store.save_profile(Profile("a"), make_default=True)
    store.save_profile(Profile("b"))
    assert store.delete_profile("nope") is False
    assert store.delete_profile("b") is True
    assert store.names() == ["a"]
    assert default_of(store) == "a"
    assert store.delete_profile("a") is True
    assert default_of(store) is None
    assert store.profiles() == []
    again = ProfileStore()
    again.load()
    assert again.profiles() == []
    assert again.default_name is None


# --------------------------------------------------------------------------------------------------------------
# Passwords


def test_env_reference_expansion() -> None:
    profile = Profile("p", username="${MQTT_USER}", password="${MQTT_PASSWORD}")
    options = profile.to_client_options({"MQTT_USER": "alice", "MQTT_PASSWORD": "pw$x"})
    assert options.username == "alice"
    assert options.password == "pw$x"
    assert options.effective_password == "pw$x"
    assert profile.password == "${MQTT_PASSWORD}"  # the profile keeps the reference


def test_env_reference_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTTCHAT_TEST_PW", "from-env")
    options = Profile("p", username="u", password="pre-${MQTTCHAT_TEST_PW}-post").to_client_options()
    assert options.password == "pre-from-env-post"


def test_missing_env_variable_is_named() -> None:
    profile = Profile("p", username="u", password="${MQTTCHAT_SURELY_UNSET}")
    with pytest.raises(ValueError, match="MQTTCHAT_SURELY_UNSET") as info:
        profile.to_client_options({})
    assert "profile 'p'" in str(info.value)
    assert "password" in str(info.value)


def test_env_references_in_url_credentials() -> None:
    options = Profile("p", url="mqtt://${U}:${P}@host").to_client_options({"U": "url-user", "P": "url-pw"})
    assert options.effective_username == "url-user"
    assert options.effective_password == "url-pw"


def test_expand_env_escapes() -> None:
    assert expand_env("a$${B}${C}$x$", {"C": "c"}) == "a${B}c$x$"
    with pytest.raises(ValueError, match=r"\$\$\{"):
        expand_env("${not closed", {})
    with pytest.raises(ValueError, match="X is not set"):
        expand_env("${X}", {})


def test_literal_password_is_not_written_without_save_password(cfg: Path) -> None:
    profile = Profile("p", url="mqtt://bob:url-secret-1@host:1883", username="bob", password="hunter2-secret")
    store = ProfileStore()
    store.save_profile(profile)
    text = (cfg / "profiles.toml").read_text()
    assert "hunter2-secret" not in text
    assert "url-secret-1" not in text
    assert "password" not in text
    stored = store.get("p")
    assert stored is not None
    assert stored.password is None
    assert stored.url == "mqtt://bob@host:1883"
    assert stored.save_password is False


def test_env_reference_is_always_written(cfg: Path) -> None:
    store = ProfileStore()
    store.save_profile(Profile("p", url="mqtt://u:${URL_PW}@host", password="${MQTT_PASSWORD}"))
    data = tomllib.loads((cfg / "profiles.toml").read_text())
    assert data["profiles"]["p"]["password"] == "${MQTT_PASSWORD}"
    assert data["profiles"]["p"]["url"] == "mqtt://u:${URL_PW}@host"
    stored = store.get("p")
    assert stored is not None
    assert stored.save_password is False


def test_password_mixing_reference_and_literal_text_counts_as_literal(cfg: Path) -> None:
    ProfileStore().save_profile(Profile("p", username="u", password="lit-${X}"))
    assert "lit-" not in (cfg / "profiles.toml").read_text()


@posix_only
def test_file_mode(cfg: Path) -> None:
    old = os.umask(0o022)
    try:
        store = ProfileStore()
        store.save_profile(Profile("open"))
        path = cfg / "profiles.toml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        store.save_profile(Profile("p", username="u", password="s3cret", save_password=True))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        store.delete_profile("p")
        # An existing file keeps its mode.
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o640)
        store.save_profile(Profile("q", password="${PW}", username="u"))  # references count as passwords too
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        settings = settings_path()
        save_settings(AppSettings())
        assert stat.S_IMODE(settings.stat().st_mode) == 0o644
    finally:
        os.umask(old)


# --------------------------------------------------------------------------------------------------------------
# TLS files


def test_relative_tls_paths_are_relative_to_the_file(
    cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write_profiles(
        cfg,
        """\
[profiles.p]
url = "mqtts://h"
[profiles.p.tls]
ca_file = "ca.pem"
cert_file = "sub/client.pem"
key_file = "~/keys/client.key"
""",
    )
    store = ProfileStore()
    store.load()
    profile = store.get("p")
    assert profile is not None
    assert profile.ca_file == str(cfg / "ca.pem")
    assert profile.cert_file == str(cfg / "sub" / "client.pem")
    assert profile.key_file == str(tmp_path / "home" / "keys" / "client.key")
    tls = profile.to_client_options({}).tls
    assert tls is not None
    assert tls.ca_file == str(cfg / "ca.pem")


def test_check_files(cfg: Path) -> None:
    cfg.mkdir(parents=True)
    (cfg / "ca.pem").write_text("x")
    profile = Profile("p", url="mqtts://h", ca_file=str(cfg / "ca.pem"), cert_file="nope.pem", key_file="nope.key")
    assert profile.validate() == {}
    problems = profile.validate(check_files=True)
    assert set(problems) == {"cert_file", "key_file"}
    assert "file not found" in problems["cert_file"]


# --------------------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"name": ""}, "name", "needs a name"),
        ({"name": " x"}, "name", "blanks"),
        ({"name": "a\tb"}, "name", "control"),
        ({"name": "x" * 65}, "name", "too long"),
        ({"url": "gopher://h"}, "url", "unknown URL scheme"),
        ({"url": "mqtt://h:99999"}, "url", "bad port"),
        ({"url": "mqtt://"}, "url", "no host"),
        ({"url": "mqtt://u:${x@h"}, "url", "environment-variable reference"),
        ({"version": 4}, "version", "5 (MQTT 5) or 311"),
        ({"version": 3}, "version", "5 (MQTT 5) or 311"),
        ({"client_id": "a\x00b"}, "client_id", "U+0000"),
        ({"client_id": "é" * 40_000}, "client_id", "too long"),
        ({"version": 311, "clean_start": False}, "client_id", "fixed client id"),
        ({"username": "u\x00"}, "username", "U+0000"),
        ({"username": "u", "password": "${oops"}, "password", "environment-variable reference"),
        ({"version": 311, "password": "pw"}, "password", "only with a username"),
        ({"keepalive": -1}, "keepalive", "between 0 and 65535"),
        ({"keepalive": 65536}, "keepalive", "between 0 and 65535"),
        ({"keepalive": True}, "keepalive", "integer"),
        ({"session_expiry": -1}, "session_expiry", "between 0 and 4294967295"),
        ({"session_expiry": 4_294_967_296}, "session_expiry", "between 0 and 4294967295"),
        ({"version": 311, "session_expiry": 60}, "session_expiry", "MQTT 3.1.1 has no session expiry"),
        ({"subscriptions": (("a/#/b", 0),)}, "subscriptions", "'#' must be the last level"),
        ({"subscriptions": (("a+", 0),)}, "subscriptions", "whole level"),
        ({"subscriptions": (("", 0),)}, "subscriptions", "must not be empty"),
        ({"subscriptions": (("a", 3),)}, "subscriptions", "QoS of 'a' must be 0, 1 or 2"),
        ({"subscriptions": (("a", 0), ("a", 1))}, "subscriptions", "subscribed twice"),
        ({"subscriptions": (("$share/g", 0),)}, "subscriptions", "share"),
        ({"url": "mqtts://h", "cert_file": "c.pem"}, "key_file", "needs its key_file"),
        ({"url": "mqtts://h", "key_file": "c.key"}, "cert_file", "needs its client certificate"),
        ({"ca_file": "ca.pem"}, "ca_file", "only used with TLS"),
        ({"insecure": True}, "insecure", "only used with TLS"),
        ({"server_hostname": "x"}, "server_hostname", "only used with TLS"),
        ({"url": "mqtts://h", "server_hostname": " x"}, "server_hostname", "blanks"),
        ({"will_topic": "a/+"}, "will_topic", "wildcard"),
        ({"will_payload": "bye"}, "will_topic", "a will needs a topic"),
        ({"will_topic": "t", "will_qos": 3}, "will_qos", "must be 0, 1 or 2"),
        ({"will_topic": "t", "will_payload": "x" * 65_536}, "will_payload", "too long"),
    ],
)
def test_validation_problems(changes: dict[str, Any], field: str, fragment: str) -> None:
    profile = Profile(**{"name": "p", **changes})
    problems = profile.validate()
    assert field in problems, problems
    assert fragment in problems[field]
    with pytest.raises(ProfileError) as info:
        profile.to_client_options({})
    assert field in info.value.problems


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "ws://h:8080/mqtt", "version": 311, "username": "u", "password": "pw", "clean_start": False,
         "client_id": "c"},
        {"url": "mqtt://u:pw@h", "version": 311},  # the URL's user name goes with the password
        {"url": "wss://h", "cert_file": "c.pem", "key_file": "c.key", "insecure": True},
        {"will_topic": "", "will_payload": ""},  # an empty will topic is no will
        {"subscriptions": ()},
        {"username": "", "password": ""},
        {"password": "$${literal"},
        {"session_expiry": 4_294_967_295, "keepalive": 0},
    ],
)  # fmt: skip
def test_valid_profiles(changes: dict[str, Any]) -> None:
    assert Profile("p", **changes).validate() == {}


# --------------------------------------------------------------------------------------------------------------
# Errors in the file


def test_wrong_type_names_file_line_and_key(cfg: Path) -> None:
    error = load_error(cfg, '# profiles\n\n[profiles.local]\nurl = "mqtt://h"\nkeepalive = "sixty"\n')
    assert error.line == 5
    assert error.key == "profiles.local.keepalive"
    assert "must be an integer, not 'sixty'" in str(error)
    assert str(error).startswith(f"{cfg / 'profiles.toml'}:5: profiles.local.keepalive: ")


def test_unknown_key_names_file_line_and_key(cfg: Path) -> None:
    error = load_error(cfg, '[profiles.local]\nurl = "mqtt://h"\nclientid = "me"\n')
    assert error.line == 3
    assert error.key == "profiles.local.clientid"
    assert "unknown key 'clientid'; did you mean 'client_id'?" in str(error)


def test_unknown_key_in_tls_and_will_tables(cfg: Path) -> None:
    error = load_error(cfg, '[profiles.a]\nurl = "mqtts://h"\n[profiles.a.tls]\ncafile = "x"\n')
    assert (error.line, error.key) == (4, "profiles.a.tls.cafile")
    assert "did you mean 'ca_file'" in str(error)
    error = load_error(cfg, '[profiles.a]\nwill = { topic = "t", qos = 1, retained = true }\n')
    assert (error.line, error.key) == (2, "profiles.a.will.retained")


def test_unknown_top_level_key(cfg: Path) -> None:
    error = load_error(cfg, 'default = "a"\ntheme = "dark"\n[profiles.a]\n')
    assert (error.line, error.key) == (2, "theme")


def test_the_first_error_in_the_file_is_reported(cfg: Path) -> None:
    error = load_error(cfg, '[profiles.b]\nversion = "5"\n[profiles.a]\nkeepalive = "x"\n')
    assert (error.line, error.key) == (2, "profiles.b.version")


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ('[profiles.a]\nkeepalive = 70000\n', 2, "profiles.a.keepalive", "between 0 and 65535"),
        ('[profiles.a]\nversion = 4\n', 2, "profiles.a.version", "311"),
        ('[profiles.a]\nurl = "mqttx://h"\n', 2, "profiles.a.url", "unknown URL scheme"),
        ('[profiles.a]\nclean_start = "yes"\n', 2, "profiles.a.clean_start", "true or false"),
        (
            '[profiles.a]\nsubscriptions = [\n  "ok/#",\n  "bad/#/x",\n]\n',
            4,
            "profiles.a.subscriptions[1]",
            "'#' must be the last level",
        ),
        (
            '[profiles.a]\nsubscriptions = [{ filter = "x", qos = 5 }]\n',
            2,
            "profiles.a.subscriptions[0]",
            "must be 0, 1 or 2",
        ),
        ('[profiles.a]\nsubscriptions = [{ qos = 1 }]\n', 2, "profiles.a.subscriptions[0]", "needs a filter"),
        ('[profiles.a]\nsubscriptions = [1]\n', 2, "profiles.a.subscriptions[0]", "must be a topic filter"),
        ('[profiles.a]\nsubscriptions = "#"\n', 2, "profiles.a.subscriptions", "must be an array"),
        (
            '[profiles.a]\nsubscriptions = [{ filter = "x", qos = 1, nl = true }]\n',
            2,
            "profiles.a.subscriptions[0].nl",
            "unknown key",
        ),
        ('[profiles.a]\nurl = "mqtts://h"\ntls = "yes"\n', 3, "profiles.a.tls", "must be a table"),
        ('[profiles.a]\nurl = "mqtts://h"\n\n[profiles.a.tls]\ncert_file = "c"\n', 4, "profiles.a.tls.key_file",
         "needs its key_file"),
        ('[profiles.a]\n[profiles.a.will]\nqos = 1\n', 2, "profiles.a.will", "a will needs a topic"),
        ('[profiles.a]\n[profiles.a.will]\ntopic = ""\n', 3, "profiles.a.will.topic", "must not be empty"),
        ('[profiles.a]\n[profiles.a.will]\ntopic = "a/#"\n', 3, "profiles.a.will.topic", "wildcard"),
        ('[profiles.a]\nversion = 311\nclean_start = false\n', 1, "profiles.a.client_id", "fixed client id"),
        ('profiles = 3\n', 1, "profiles", "must be a table"),
        ('[profiles]\na = 1\n', 2, "profiles.a", "must be a table"),
        ('default = 1\n', 1, "default", "must be a string"),
        ('[profiles."a\\tb"]\n', 1, 'profiles."a\\tb"', "control characters"),
    ],
)  # fmt: skip
def test_value_errors(cfg: Path, text: str, line: int, key: str, fragment: str) -> None:
    error = load_error(cfg, text)
    assert (error.line, error.key) == (line, key), str(error)
    assert fragment in str(error)


def test_invalid_toml_names_the_line(cfg: Path) -> None:
    error = load_error(cfg, '[profiles.a]\nurl = "mqtt://h"\nkeepalive = \n')
    assert error.line == 3
    assert error.key is None
    assert "invalid TOML" in str(error)


def test_not_utf8(cfg: Path) -> None:
    cfg.mkdir(parents=True)
    (cfg / "profiles.toml").write_bytes(b'[profiles.a]\nurl = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        ProfileStore().load()
    assert info.value.line == 2


def test_unreadable_path(cfg: Path) -> None:
    (cfg / "profiles.toml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot read the file"):
        ProfileStore().load()


def test_lines_with_dotted_keys_multiline_strings_and_comments(cfg: Path) -> None:
    text = """\
# a comment with [profiles.fake] and key = "value"
[profiles.a]
url = "mqtts://h"   # trailing [comment]
will.payload = '''
[profiles.not_a_table]
keepalive = "no"
'''
will.topic = "t"
tls.insecure = "maybe"
"""
    error = load_error(cfg, text)
    assert (error.line, error.key) == (9, "profiles.a.tls.insecure")


# --------------------------------------------------------------------------------------------------------------
# Client options


def test_to_client_options_tls_will_and_session(cfg: Path) -> None:
    profile = full_profile(cfg)
    options = profile.to_client_options({"MQTT_PASSWORD": "pw"})
    target = options.target
    assert (target.host, target.port, target.tls, target.websocket) == ("broker.example.com", 8883, True, False)
    assert options.version == ProtocolVersion.MQTT_5
    assert options.client_id == "me-1"
    assert options.clean_start is False
    assert options.session_expiry == 3600
    assert options.keepalive == 30
    assert (options.username, options.password) == ("alice", "pw")
    assert options.tls == TLSOptions(
        ca_file=str(cfg / "ca.pem"),
        cert_file=str(cfg / "certs" / "client.pem"),
        key_file="/elsewhere/client.key",
        insecure=True,
        server_hostname="broker.internal",
    )
    assert options.will == Will("clients/me/status", "offline ✝".encode(), 1, True)
    # The subscriptions stay with the profile: the app subscribes to them once connected.
    assert profile.subscriptions[2] == ("home/+/temp", 1)


def test_to_client_options_plain_and_websocket() -> None:
    options = Profile("p", url="ws://h:8080/ws").to_client_options({})
    assert (options.target.websocket, options.target.tls, options.target.path) == (True, False, "/ws")
    assert options.tls is None
    assert options.will is None
    assert options.session_expiry is None
    assert options.client_id == ""
    options = Profile("p", url="wss://h").to_client_options({})
    assert options.target.port == 443
    assert options.tls == TLSOptions()  # the system trust store


def test_to_client_options_url_credentials() -> None:
    options = Profile("p", url="mqtt://bob:pw@h").to_client_options({})
    assert (options.username, options.password) == (None, None)
    assert (options.effective_username, options.effective_password) == ("bob", "pw")
    options = Profile("p", url="mqtt://bob:pw@h", username="carol", password="x").to_client_options({})
    assert (options.effective_username, options.effective_password) == ("carol", "x")
    options = Profile("p", url="mqtt://bob:pw@h", username="", password="").to_client_options({})
    assert (options.effective_username, options.effective_password) == ("bob", "pw")


def test_to_client_options_mqtt311() -> None:
    options = Profile("p", version=311, session_expiry=0).to_client_options({})
    assert options.version == ProtocolVersion.MQTT_3_1_1
    assert options.session_expiry is None
    assert options.client_id.startswith("mqttchat-")
    assert len(options.client_id) == len("mqttchat-") + 8
    fixed = Profile("p", version=311, client_id="me", clean_start=False).to_client_options({})
    assert (fixed.client_id, fixed.clean_start) == ("me", False)


# --------------------------------------------------------------------------------------------------------------
# App settings


def test_settings_missing_file_gives_defaults(cfg: Path) -> None:
    assert load_settings() == AppSettings()
    assert AppSettings().theme == "textual-dark"
    assert (AppSettings().history_per_topic, AppSettings().flush_hz, AppSettings().chat_nick) == (100, 15, None)
    assert not cfg.exists()


def test_settings_round_trip(cfg: Path) -> None:
    settings = AppSettings(
        theme="nord",
        history_per_topic=500,
        history_budget_mb=128,
        history_payload_limit_kb=16,
        flush_hz=30,
        chat_nick="alice",
        history_store=False,  # not the default
        history_store_mb=32,
        history_retention_days=0,
    )
    save_settings(settings)
    assert load_settings() == settings
    assert load_settings(cfg / "settings.toml") == settings
    save_settings(AppSettings())
    text = (cfg / "settings.toml").read_text()
    assert "chat_nick" not in text  # None is left out
    assert load_settings() == AppSettings()


def test_settings_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "s" / "settings.toml"
    save_settings(AppSettings(flush_hz=5), path)
    assert load_settings(path) == AppSettings(flush_hz=5)


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ('theme = "x"\nflush_hz = "fast"\n', 2, "flush_hz", "must be an integer"),
        ('theme = "x"\n\nflushhz = 10\n', 3, "flushhz", "did you mean 'flush_hz'"),
        ("flush_hz = 0\n", 1, "flush_hz", "between 1 and 120"),
        ('theme = ""\n', 1, "theme", "theme name"),
        ("history_per_topic = 0\n", 1, "history_per_topic", "between 1 and"),
        ('theme = "x"\nhistory_store = "yes"\n', 2, "history_store", "true or false"),
        ("history_store_mb = 0\n", 1, "history_store_mb", "between 1 and"),
        ("history_retention_days = -1\n", 1, "history_retention_days", "between 0 and"),
        ("history_budget_mb = 1\nhistory_payload_limit_kb = 2048\n", 2, "history_payload_limit_kb", "exceed"),
        ('chat_nick = "a/b"\n', 1, "chat_nick", "'/'"),
        ('chat_nick = ""\n', 1, "chat_nick", "empty"),
        ("chat_nick = 3\n", 1, "chat_nick", "must be a string"),
        ("theme = \n", 1, None, "invalid TOML"),
    ],
)
def test_settings_errors(cfg: Path, text: str, line: int, key: str | None, fragment: str) -> None:
    cfg.mkdir(parents=True)
    path = cfg / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    error = info.value
    assert (error.file, error.line, error.key) == (str(path), line, key), str(error)
    assert fragment in str(error)


def test_save_settings_rejects_invalid(cfg: Path) -> None:
    with pytest.raises(ValueError, match="flush_hz"):
        save_settings(AppSettings(flush_hz=0))
    assert AppSettings(chat_nick=" x").validate() == {"chat_nick": "must not start or end with blanks"}
    assert not (cfg / "settings.toml").exists()
