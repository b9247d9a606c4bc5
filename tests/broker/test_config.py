"""The broker's TOML configuration: defaults, every key, paths, errors with file/line/key, overrides."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import platformdirs
import pytest

from mqttchat.broker.config import (
    BROKER_KEYS,
    LISTENER_KEYS,
    BrokerConfig,
    ListenerConfig,
    default_config,
    default_persistence_file,
    describe,
    load_config,
    parse_config,
    with_overrides,
)
from mqttchat.broker.overload import water_marks
from mqttchat.config.keylines import key_lines
from mqttchat.config.toml import ConfigError


def write(directory: Path, name: str, text: str = "") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, "broker.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def assert_error(error: ConfigError, file: Path | str, line: int | None, key: str | None, *fragments: str) -> None:
    """The error names the file, the line and the key, in that order, like ``broker.toml:12: key: message``."""
    text = str(error)
    assert error.file == str(file)
    assert error.line == line, text
    assert error.key == key, text
    where = f"{file}:{line}" if line is not None else f"{file}"
    assert text.startswith(f"{where}: {key}: " if key else f"{where}: "), text
    for fragment in fragments:
        assert fragment in text, text


# --------------------------------------------------------------------------------------------------------------
# Defaults


def test_defaults() -> None:
    config = default_config()
    assert config.allow_anonymous is True
    assert config.password_file is None
    assert config.acl_file is None
    assert config.max_queued_messages == 1000
    assert config.max_queued_bytes == 0
    assert config.max_inflight_messages == 20
    assert config.receive_maximum == 65535
    assert config.max_packet_size == 0
    assert config.message_size_limit == 0
    assert config.max_keepalive == 65535
    assert config.max_connections == -1
    assert config.max_topic_alias == 10
    assert config.maximum_qos == 2
    assert config.retain_available is True
    assert config.allow_zero_length_clientid is True
    assert config.connect_timeout == 5.0
    assert config.persistence is False
    assert config.persistence_file == platformdirs.user_data_path("mqttchat") / "broker.sqlite3"
    assert config.autosave_interval == 0
    assert config.sys_interval == 10
    assert config.queue_qos0_messages is False
    assert config.persistent_client_expiration == 0
    assert config.log_connections is True
    assert config.overload_protection is True
    assert (config.overload_high_water, config.overload_low_water) == (100, 50)
    assert config.overload_stall_timeout == 1.0
    assert config.source is None
    assert config.listeners == (ListenerConfig(),)
    (listener,) = config.listeners
    assert (listener.host, listener.port, listener.protocol) == ("127.0.0.1", 1883, "mqtt")
    assert listener.path == "/mqtt"
    assert (listener.certfile, listener.keyfile, listener.cafile) == (None, None, None)
    assert listener.require_certificate is False
    assert listener.max_connections == -1
    assert not listener.tls
    assert listener.url == "mqtt://127.0.0.1:1883"


def test_every_config_key_is_a_field() -> None:
    fields = {f.name for f in dataclasses.fields(BrokerConfig)}
    assert set(BROKER_KEYS) - {"listener"} == fields - {"listeners", "source"}
    listener_fields = {f.name for f in dataclasses.fields(ListenerConfig)}
    assert set(LISTENER_KEYS) - {"bind_address"} == listener_fields


def test_empty_text_and_empty_file_give_the_defaults(tmp_path: Path) -> None:
    assert parse_config("") == default_config()
    assert parse_config("# nothing but a comment\n\n") == default_config()
    path = write(tmp_path, "broker.toml")
    config = load_config(path)
    assert dataclasses.replace(config, source=None) == default_config()
    assert config.source == path


def test_an_empty_listener_array_means_the_default_listener() -> None:
    assert parse_config("listener = []").listeners == (ListenerConfig(),)


def test_the_default_persistence_file_comes_from_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []

    def fake_user_data_path(appname: str | None = None, *args: object, **kwargs: object) -> Path:
        calls.append(str(appname))
        return tmp_path / "data" / str(appname)

    monkeypatch.setattr(platformdirs, "user_data_path", fake_user_data_path)
    expected = tmp_path / "data" / "mqttchat" / "broker.sqlite3"
    assert default_persistence_file() == expected
    assert default_config().persistence_file == expected
    assert parse_config("persistence = true").persistence_file == expected
    assert calls and set(calls) == {"mqttchat"}


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_DATA_HOME is for Linux")
def test_the_default_persistence_file_follows_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_config().persistence_file == tmp_path / "xdg" / "mqttchat" / "broker.sqlite3"


# --------------------------------------------------------------------------------------------------------------
# A full file


FULL = """\
# Every key, none of them at its default.
allow_anonymous = false
password_file = "passwd"
acl_file = "conf.d/acl"
max_queued_messages = 50
max_queued_bytes = 1_000_000
max_inflight_messages = 0
receive_maximum = 100
max_packet_size = 20
message_size_limit = 4096
max_keepalive = 0
max_connections = 500
max_topic_alias = 0
maximum_qos = 1
retain_available = false
allow_zero_length_clientid = false
connect_timeout = 2.5
persistence = true
persistence_file = "state/broker.sqlite3"
autosave_interval = 300
sys_interval = 0
queue_qos0_messages = true
persistent_client_expiration = 86400
log_connections = false
overload_protection = false
overload_high_water = 40
overload_low_water = 10
overload_stall_timeout = 2.5

[[listener]]
port = 0
host = "0.0.0.0"
protocol = "mqtt"
max_connections = 10

[[listener]]
port = 8883
bind_address = "::1"
certfile = "tls/server.crt"
keyfile = "tls/server.key"
cafile = "tls/ca.crt"
require_certificate = true

[[listener]]
port = 8080
protocol = "websockets"
path = "/"

[[listener]]
port = 8081
host = "localhost"
protocol = "websockets"
path = "/ws"
certfile = "tls/server.crt"
keyfile = "tls/server.key"
"""


@pytest.fixture
def full_config_file(tmp_path: Path) -> Path:
    conf = tmp_path / "etc"
    for name in ("tls/server.crt", "tls/server.key", "tls/ca.crt"):
        write(conf, name, "not checked here\n")
    return write(conf, "broker.toml", FULL)


def test_a_full_file_round_trips_every_key(full_config_file: Path) -> None:
    conf = full_config_file.parent
    config = load_config(full_config_file)
    assert config == BrokerConfig(
        allow_anonymous=False,
        password_file=conf / "passwd",
        acl_file=conf / "conf.d" / "acl",
        max_queued_messages=50,
        max_queued_bytes=1_000_000,
        max_inflight_messages=0,
        receive_maximum=100,
        max_packet_size=20,
        message_size_limit=4096,
        max_keepalive=0,
        max_connections=500,
        max_topic_alias=0,
        maximum_qos=1,
        retain_available=False,
        allow_zero_length_clientid=False,
        connect_timeout=2.5,
        persistence=True,
        persistence_file=conf / "state" / "broker.sqlite3",
        autosave_interval=300,
        sys_interval=0,
        queue_qos0_messages=True,
        persistent_client_expiration=86400,
        log_connections=False,
        overload_protection=False,
        overload_high_water=40,
        overload_low_water=10,
        overload_stall_timeout=2.5,
        listeners=(
            ListenerConfig(port=0, host="0.0.0.0", max_connections=10),
            ListenerConfig(
                port=8883,
                host="::1",
                certfile=conf / "tls" / "server.crt",
                keyfile=conf / "tls" / "server.key",
                cafile=conf / "tls" / "ca.crt",
                require_certificate=True,
            ),
            ListenerConfig(port=8080, protocol="websockets", path="/"),
            ListenerConfig(
                port=8081,
                host="localhost",
                protocol="websockets",
                path="/ws",
                certfile=conf / "tls" / "server.crt",
                keyfile=conf / "tls" / "server.key",
            ),
        ),
        source=full_config_file,
    )
    assert [listener.url for listener in config.listeners] == [
        "mqtt://0.0.0.0:0",
        "mqtts://[::1]:8883",
        "ws://127.0.0.1:8080/",
        "wss://localhost:8081/ws",
    ]
    assert [listener.tls for listener in config.listeners] == [False, True, False, True]


def test_every_key_of_the_full_file_is_found_on_its_line() -> None:
    lines = key_lines(FULL)
    text_lines = FULL.splitlines()
    for key in BROKER_KEYS:
        if key != "listener":
            assert text_lines[lines[(key,)] - 1].startswith(f"{key} = ")
    headers = [number for number, line in enumerate(text_lines, 1) if line == "[[listener]]"]
    assert [lines[("listener", index)] for index in range(4)] == headers
    assert lines[("listener",)] == headers[0]
    for index in range(4):
        for key in LISTENER_KEYS:
            if (line := lines.get(("listener", index, key))) is not None:
                assert text_lines[line - 1].startswith(f"{key} = ")
                assert line > headers[index]


def test_the_source_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    write(conf, "server.crt")
    write(conf, "server.key")
    path = write(
        conf,
        "broker.toml",
        'password_file = "passwd"\nacl_file = "../acl"\npersistence_file = "/abs/state.db"\n'
        '[[listener]]\ncertfile = "server.crt"\nkeyfile = "server.key"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.source == path
    assert config.password_file == conf / "passwd"
    assert config.acl_file == conf / ".." / "acl"
    assert config.persistence_file == Path("/abs/state.db")
    assert config.listeners[0].certfile == conf / "server.crt"
    assert config.listeners[0].url == "mqtts://127.0.0.1:1883"

    # A relative file name: paths are still relative to its directory, and the source is absolute.
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/broker.toml")
    assert config.source == path
    assert config.password_file == conf / "passwd"


def test_parse_config_resolves_against_base_dir_or_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_config('acl_file = "acl"', base_dir=tmp_path).acl_file == tmp_path / "acl"
    monkeypatch.chdir(tmp_path)
    assert parse_config('acl_file = "x/acl"').acl_file == tmp_path / "x" / "acl"
    # A Path given as the file becomes the source; a name like "<config>" does not.
    assert parse_config("", file=tmp_path / "b.toml").source == tmp_path / "b.toml"
    assert parse_config("", file="<text>").source is None


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_config('password_file = "~/passwd"').password_file == tmp_path / "passwd"


def test_integers_are_accepted_for_connect_timeout() -> None:
    config = parse_config("connect_timeout = 3")
    assert config.connect_timeout == 3.0
    assert isinstance(config.connect_timeout, float)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("max_packet_size = 268435460", "max_packet_size", 268435460),
        ("message_size_limit = 268435455", "message_size_limit", 268435455),
        ("max_inflight_messages = 65535", "max_inflight_messages", 65535),
        ("receive_maximum = 1", "receive_maximum", 1),
        ("max_topic_alias = 65535", "max_topic_alias", 65535),
        ("maximum_qos = 0", "maximum_qos", 0),
        ("max_connections = 1", "max_connections", 1),
        ("max_queued_messages = 0", "max_queued_messages", 0),
    ],
)
def test_boundary_values_are_accepted(text: str, field: str, value: int) -> None:
    assert getattr(parse_config(text), field) == value


def test_quoted_keys_are_keys() -> None:
    assert parse_config('"max_queued_messages" = 7').max_queued_messages == 7
    config = parse_config("[[listener]]\n'port' = 1234\n")
    assert config.listeners[0].port == 1234


def test_listeners_as_an_array_of_inline_tables() -> None:
    config = parse_config('listener = [{port = 1884}, {port = 1885, host = "::"}]')
    assert [listener.url for listener in config.listeners] == ["mqtt://127.0.0.1:1884", "mqtt://[::]:1885"]


# --------------------------------------------------------------------------------------------------------------
# Errors: reading the file and TOML syntax


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert_error(info.value, path, None, None, "cannot read", "No such file")


def test_a_directory_is_not_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert_error(info.value, tmp_path, None, None, "cannot read")


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(b"allow_anonymous = true\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert_error(info.value, path, 2, None, "UTF-8")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("allow_anonymous = true\nmax_queued_messages = \n", 2),
        ("a = 1\n\n[[listener]\nport = 1\n", 3),
        ("allow_anonymous = true\nallow_anonymous = false\n", 2),
        ("x = 1\ny = 'unterminated", 2),
    ],
)
def test_toml_syntax_errors_have_the_line(tmp_path: Path, text: str, line: int) -> None:
    error = load_error(tmp_path, text)
    assert_error(error, tmp_path / "broker.toml", line, None, "invalid TOML")
    assert "(at line" not in str(error)


# --------------------------------------------------------------------------------------------------------------
# Errors: keys


def test_an_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    error = load_error(tmp_path, "allow_anonymous = true\n\nmax_queued_message = 10\n")
    assert_error(
        error,
        tmp_path / "broker.toml",
        3,
        "max_queued_message",
        "unknown key 'max_queued_message'; did you mean 'max_queued_messages'?",
    )


def test_an_unknown_key_with_nothing_close(tmp_path: Path) -> None:
    error = load_error(tmp_path, "zzz = 1\n")
    assert_error(error, tmp_path / "broker.toml", 1, "zzz", "unknown key 'zzz'")
    assert "did you mean" not in str(error)


def test_an_unknown_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, "sys_interval = 5\n\n[bridge]\naddress = 'x'\n")
    assert_error(error, tmp_path / "broker.toml", 3, "bridge", "unknown key 'bridge'")


def test_listeners_spelled_wrong(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[[listeners]]\nport = 1\n")
    assert_error(error, tmp_path / "broker.toml", 1, "listeners", "did you mean 'listener'?")


def test_an_unknown_listener_key_in_the_second_listener(tmp_path: Path) -> None:
    text = '[[listener]]\nport = 1884\n\n[[listener]]\nport = 1885\nprotocl = "websockets"\n'
    error = load_error(tmp_path, text)
    assert_error(error, tmp_path / "broker.toml", 6, "protocl", "in [[listener]]", "did you mean 'protocol'?")


def test_a_top_level_key_after_a_listener_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[[listener]]\nport = 1884\nallow_anonymous = false\n")
    assert_error(error, tmp_path / "broker.toml", 3, "allow_anonymous", "before the first [[listener]]")


def test_a_listener_key_at_the_top_level(tmp_path: Path) -> None:
    error = load_error(tmp_path, "allow_anonymous = false\ncafile = 'ca.crt'\n")
    assert_error(error, tmp_path / "broker.toml", 2, "cafile", "go in a [[listener]] table")


def test_a_dotted_unknown_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "sys_interval = 5\nlog.connections = true\n")
    assert_error(error, tmp_path / "broker.toml", 2, "log", "unknown key 'log'")


def test_host_and_bind_address_together(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[[listener]]\nhost = "::1"\nbind_address = "::1"\n')
    assert_error(error, tmp_path / "broker.toml", 3, "bind_address", "either host or bind_address")


# --------------------------------------------------------------------------------------------------------------
# Errors: values


BAD_VALUES = [
    ('max_queued_messages = "many"', "max_queued_messages", "must be an integer >= 0, not 'many'"),
    ("max_queued_messages = -1", "max_queued_messages", "must be an integer >= 0, not -1"),
    ("max_queued_messages = true", "max_queued_messages", "not true"),
    ("max_queued_messages = 1.0", "max_queued_messages", "not 1.0"),
    ("max_queued_bytes = -5", "max_queued_bytes", ">= 0"),
    ("max_inflight_messages = 65536", "max_inflight_messages", "between 0 and 65535"),
    ("receive_maximum = 0", "receive_maximum", "between 1 and 65535"),
    ("receive_maximum = 70000", "receive_maximum", "between 1 and 65535"),
    ("max_packet_size = 19", "max_packet_size", "0 (the protocol maximum) or an integer between 20 and 268435460"),
    ("max_packet_size = 268435461", "max_packet_size", "not 268435461"),
    ("message_size_limit = 268435456", "message_size_limit", "between 0 and 268435455"),
    ("message_size_limit = false", "message_size_limit", "not false"),
    ("max_keepalive = 65536", "max_keepalive", "between 0 and 65535"),
    ("max_keepalive = -1", "max_keepalive", "between 0 and 65535"),
    ("max_connections = 0", "max_connections", "-1 (unlimited) or an integer >= 1, not 0"),
    ("max_connections = -2", "max_connections", "not -2"),
    ("max_topic_alias = 65536", "max_topic_alias", "between 0 and 65535"),
    ("maximum_qos = 3", "maximum_qos", "between 0 and 2, not 3"),
    ("maximum_qos = true", "maximum_qos", "not true"),
    ('allow_anonymous = "yes"', "allow_anonymous", "must be true or false, not 'yes'"),
    ("retain_available = 1", "retain_available", "true or false"),
    ("allow_zero_length_clientid = 0", "allow_zero_length_clientid", "true or false"),
    ("persistence = []", "persistence", "not an array"),
    ("queue_qos0_messages = {}", "queue_qos0_messages", "not a table"),
    ("log_connections = 'no'", "log_connections", "true or false"),
    ("connect_timeout = 0", "connect_timeout", "must be a number of seconds > 0, not 0"),
    ("connect_timeout = -1.5", "connect_timeout", "not -1.5"),
    ('connect_timeout = "5"', "connect_timeout", "not '5'"),
    ("connect_timeout = true", "connect_timeout", "not true"),
    ("connect_timeout = nan", "connect_timeout", "> 0"),
    ("connect_timeout = inf", "connect_timeout", "> 0"),
    ("autosave_interval = -1", "autosave_interval", ">= 0"),
    ("sys_interval = 1.5", "sys_interval", "must be an integer >= 0, not 1.5"),
    ("persistent_client_expiration = '1d'", "persistent_client_expiration", "not '1d'"),
    ("password_file = 5", "password_file", "must be a file name (a string), not 5"),
    ('acl_file = ""', "acl_file", "must not be empty"),
    ("persistence_file = 1979-05-27", "persistence_file", "not 1979-05-27"),
    ("overload_protection = 'on'", "overload_protection", "true or false"),
    ("overload_high_water = 0", "overload_high_water", "must be an integer >= 1, not 0"),
    ("overload_low_water = -1", "overload_low_water", "must be an integer >= 0, not -1"),
    ("overload_stall_timeout = 0", "overload_stall_timeout", "must be a number of seconds > 0, not 0"),
    ("overload_high_water = 1000", "overload_high_water", "below max_queued_messages (1000)"),
    ("overload_low_water = 100", "overload_low_water", "below overload_high_water (100)"),
]


@pytest.mark.parametrize(("line", "key", "message"), BAD_VALUES)
def test_a_bad_top_level_value(tmp_path: Path, line: str, key: str, message: str) -> None:
    other = "retain_available" if key != "retain_available" else "log_connections"
    error = load_error(tmp_path, f"# a comment\n{other} = true\n\n{line}\n# the end\n")
    assert_error(error, tmp_path / "broker.toml", 4, key, message)


def test_the_water_marks_are_checked_against_each_other_on_their_lines(tmp_path: Path) -> None:
    """A low mark at or above the high one, a high one at or above the queue limit: an error on the line of the mark
    given. Marks left at their defaults follow a smaller queue limit instead (a file written before them stays
    valid), and max_queued_messages = 0 (no limit) takes any high mark."""
    text = "max_queued_messages = 500\noverload_high_water = 200\n# the low mark\noverload_low_water = 200\n"
    assert_error(
        load_error(tmp_path, text), tmp_path / "broker.toml", 4, "overload_low_water", "below overload_high_water (200)"
    )
    text = "overload_high_water = 30\nmax_queued_messages = 30\n"
    assert_error(
        load_error(tmp_path, text), tmp_path / "broker.toml", 1, "overload_high_water", "below max_queued_messages (30)"
    )
    assert water_marks(parse_config("max_queued_messages = 30\n")) == (29, 14)
    assert water_marks(parse_config("overload_high_water = 40\n")) == (40, 20)
    assert water_marks(parse_config("max_queued_messages = 0\noverload_high_water = 5000\n")) == (5000, 50)
    assert water_marks(parse_config("overload_protection = false\n"))[0] > 2**60


def test_the_documented_message_format() -> None:
    text = "\n" * 11 + 'max_queued_messages = "many"\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, "broker.toml")
    assert str(info.value) == "broker.toml:12: max_queued_messages: must be an integer >= 0, not 'many'"


BAD_LISTENER_VALUES = [
    ("port = 65536", "port", "between 0 and 65535, not 65536"),
    ("port = -1", "port", "between 0 and 65535"),
    ('port = "1883"', "port", "not '1883'"),
    ("port = true", "port", "not true"),
    ("host = 127", "host", "must be a string, not 127"),
    ('host = ""', "host", "must not be empty"),
    ('bind_address = " "', "bind_address", "must not be empty"),
    ('protocol = "ws"', "protocol", "must be 'mqtt' or 'websockets', not 'ws'"),
    ('protocol = "MQTT"', "protocol", "not 'MQTT'"),
    ('path = "mqtt"', "path", "must start with '/'"),
    ("path = 1", "path", "must be a string"),
    ('path = "/mqtt"', "path", 'only applies to protocol = "websockets"'),
    ("require_certificate = 1", "require_certificate", "true or false"),
    ("max_connections = 0", "max_connections", "-1 (unlimited) or an integer >= 1"),
    ('certfile = "missing.crt"', "certfile", "file not found"),
    ('keyfile = "missing.key"', "keyfile", "file not found"),
    ('cafile = "missing.crt"', "cafile", "file not found"),
    ('certfile = "."', "certfile", "not a file"),
    ('certfile = "server.crt"', "certfile", "needs keyfile"),
    ('keyfile = "server.key"', "keyfile", "needs certfile"),
    ('cafile = "ca.crt"', "cafile", "needs certfile and keyfile"),
    ("require_certificate = true", "require_certificate", "needs cafile"),
]


@pytest.mark.parametrize(("line", "key", "message"), BAD_LISTENER_VALUES)
def test_a_bad_value_in_the_second_listener(tmp_path: Path, line: str, key: str, message: str) -> None:
    for name in ("server.crt", "server.key", "ca.crt"):
        write(tmp_path, name)
    text = f"sys_interval = 5\n\n[[listener]]\nport = 1884\n\n[[listener]]\n# the second\nport = 1885\n{line}\n"
    if key == "port":
        text = f"sys_interval = 5\n\n[[listener]]\nport = 1884\n\n[[listener]]\n# the second\n\n{line}\n"
    error = load_error(tmp_path, text)
    assert_error(error, tmp_path / "broker.toml", 9, key, message)


def test_a_bad_value_in_a_full_tls_listener_is_reported_on_its_line(tmp_path: Path) -> None:
    for name in ("server.crt", "server.key"):
        write(tmp_path, name)
    text = (
        '[[listener]]\nport = 8883\ncertfile = "server.crt"\nkeyfile = "server.key"\n'
        'require_certificate = true\nprotocol = "mqtt"\n'
    )
    error = load_error(tmp_path, text)
    assert_error(error, tmp_path / "broker.toml", 5, "require_certificate", "needs cafile")


def test_listener_as_a_table_instead_of_an_array_of_tables(tmp_path: Path) -> None:
    error = load_error(tmp_path, "sys_interval = 5\n[listener]\nport = 1884\n")
    assert_error(error, tmp_path / "broker.toml", 2, "listener", "array of tables", "[[listener]]")


def test_listener_as_a_dotted_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "sys_interval = 5\nlistener.port = 1884\n")
    assert_error(error, tmp_path / "broker.toml", 2, "listener", "array of tables")


@pytest.mark.parametrize("value", ["5", "[1, 2]", '"mqtt://x"', "[{port = 1}, 2]"])
def test_listener_as_something_else(tmp_path: Path, value: str) -> None:
    error = load_error(tmp_path, f"\nlistener = {value}\n")
    assert_error(error, tmp_path / "broker.toml", 2, "listener", "array of [[listener]] tables")


def test_two_listeners_on_the_same_address(tmp_path: Path) -> None:
    text = '[[listener]]\nport = 1884\n\n[[listener]]\nport = 1885\n\n[[listener]]\nhost = "127.0.0.1"\nport = 1884\n'
    error = load_error(tmp_path, text)
    assert_error(error, tmp_path / "broker.toml", 9, "port", "127.0.0.1:1884", "listener 1 (line 2)")


def test_two_default_listeners(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[[listener]]\n[[listener]]\n")
    assert_error(error, tmp_path / "broker.toml", 2, "listener", "127.0.0.1:1883", "listener 1 (line 1)")


def test_same_port_on_other_hosts_and_port_zero_twice_are_fine() -> None:
    text = (
        '[[listener]]\nport = 1884\n[[listener]]\nport = 1884\nhost = "::1"\n'
        "[[listener]]\nport = 0\n[[listener]]\nport = 0\n"
    )
    assert [listener.port for listener in parse_config(text).listeners] == [1884, 1884, 0, 0]


def test_the_first_error_in_the_file_is_reported(tmp_path: Path) -> None:
    text = 'sys_interval = -1\n[[listener]]\nport = "x"\n'
    error = load_error(tmp_path, 'log_connections = 1\nmax_queued_messages = "many"\n' + text)
    assert_error(error, tmp_path / "broker.toml", 1, "log_connections")
    # Document order, not the order of the fields (max_connections comes before maximum_qos there).
    error = load_error(tmp_path, "maximum_qos = 7\nmax_connections = 0\n")
    assert (error.line, error.key) == (1, "maximum_qos")
    # Errors in listeners too: an unknown key on line 3 comes before a bad value on line 4.
    error = load_error(tmp_path, "[[listener]]\n[[listener]]\nbogus = 1\nport = -1\n")
    assert (error.line, error.key) == (3, "bogus")


def test_parse_config_names_the_file_given() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("\nmaximum_qos = 5", file="my.toml")
    assert str(info.value).startswith("my.toml:2: maximum_qos: ")
    with pytest.raises(ConfigError) as info:
        parse_config("maximum_qos = 5")
    assert str(info.value).startswith("<config>:1: maximum_qos: ")


# --------------------------------------------------------------------------------------------------------------
# Finding lines


def test_errors_in_inline_listener_tables_have_lines(tmp_path: Path) -> None:
    error = load_error(tmp_path, 'listener = [\n  {port = 1884},\n  {port = "x"},\n]\n')
    assert_error(error, tmp_path / "broker.toml", 3, "port", "not 'x'")


def test_a_quoted_key_error_has_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, '\n"max_queued_messages" = "many"\n')
    assert_error(error, tmp_path / "broker.toml", 2, "max_queued_messages")


# --------------------------------------------------------------------------------------------------------------
# Overrides, URLs and describe()


def test_overrides_replace_the_listeners(full_config_file: Path) -> None:
    config = load_config(full_config_file)
    assert with_overrides(config) is config
    only_port = with_overrides(config, port=1999)
    assert only_port.listeners == (ListenerConfig(port=1999, host="127.0.0.1"),)
    assert dataclasses.replace(only_port, listeners=config.listeners) == config
    assert with_overrides(config, host="0.0.0.0").listeners == (ListenerConfig(port=1883, host="0.0.0.0"),)
    both = with_overrides(config, port=0, host="::1")
    assert both.listeners == (ListenerConfig(port=0, host="::1"),)
    assert both.listeners[0].url == "mqtt://[::1]:0"
    assert not both.listeners[0].tls


@pytest.mark.parametrize(("port", "host", "key"), [(65536, None, "--port"), (-1, None, "--port"), (None, "", "--host")])
def test_bad_overrides(port: int | None, host: str | None, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(default_config(), port=port, host=host)
    assert info.value.key == key


def test_urls() -> None:
    crt, key = Path("/c.crt"), Path("/c.key")
    assert ListenerConfig(port=1, host="h").url == "mqtt://h:1"
    assert ListenerConfig(port=1, host="h", certfile=crt, keyfile=key).url == "mqtts://h:1"
    assert ListenerConfig(port=1, host="h", protocol="websockets").url == "ws://h:1/mqtt"
    assert ListenerConfig(port=1, host="h", protocol="websockets", path="").url == "ws://h:1/"
    tls_ws = ListenerConfig(port=443, host="::", protocol="websockets", path="/x", certfile=crt, keyfile=key)
    assert tls_ws.url == "wss://[::]:443/x"
    assert tls_ws.tls
    assert not ListenerConfig(certfile=crt).tls


def test_describe_the_defaults() -> None:
    lines = describe(default_config())
    text = "\n".join(lines)
    assert lines[0].split() == ["config", "built-in", "defaults"]
    assert lines[1].split() == ["listener", "mqtt://127.0.0.1:1883"]
    for key in BROKER_KEYS:
        if key != "listener":
            assert any(line.split()[0] == key for line in lines), key
    assert "max_queued_messages           1000 per client" in text
    assert "unused: persistence is off" in text
    assert "-1 (unlimited)" in text


def test_describe_a_full_file(full_config_file: Path) -> None:
    text = "\n".join(describe(load_config(full_config_file)))
    assert str(full_config_file) in text
    assert "mqtts://[::1]:8883 (certfile" in text
    assert "client certificate required" in text
    assert "ws://127.0.0.1:8080/ (any path)" in text
    assert "wss://localhost:8081/ws" in text
    assert "max_connections 10" in text
    assert "0 (no $SYS topics)" in text
    assert "unused" not in text
    assert "2.5 seconds" in text


def test_the_configs_are_frozen() -> None:
    config = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_queued_messages = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listeners[0].port = 5  # type: ignore[misc]
    assert math.isclose(config.connect_timeout, 5.0)
