"""Decoder choices per topic filter in settings.toml (``[[decoders]]``): read, written, and refused with the file,
line and key of what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttchat.config import AppSettings, ConfigError, load_settings, save_settings
from mqttchat.explorer.decoders import DecoderRule, PayloadDecoders

SETTINGS = """\
theme = "nord"

[[decoders]]
filter = "plant/+/frames"
decoder = "gzip+json"

[[decoders]]
filter = "meters/+/raw"
decoder = "struct"
struct = ">IfH"
fields = ["counter", "watts", "volts"]

[[decoders]]
filter = "devices/#"
decoder = "protobuf"
descriptor_set = "schemas/devices.pb"
message = "acme.Reading"

[[decoders]]
filter = "legacy/#"
decoder = "command"
command = ["legacy-decode", "--json"]
timeout = 5
"""


def test_rules_are_read_in_order_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS)
    settings = load_settings(path)
    assert settings.theme == "nord"
    assert settings.decoders == (
        DecoderRule("plant/+/frames", "gzip+json"),
        DecoderRule("meters/+/raw", "struct", struct=">IfH", fields=("counter", "watts", "volts")),
        DecoderRule(
            "devices/#", "protobuf", descriptor_set=str(tmp_path / "schemas/devices.pb"), message="acme.Reading"
        ),
        DecoderRule("legacy/#", "command", command=("legacy-decode", "--json"), timeout=5.0),
    )
    # What the explorer does with them.
    decoders = PayloadDecoders(settings.decoders)
    assert decoders.rule_for("plant/a/frames") == settings.decoders[0]


def test_rules_round_trip_and_a_chosen_rule_is_saved_first(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS)
    decoders = PayloadDecoders(load_settings(path).decoders)
    decoders.choose(DecoderRule("meters/7/raw", "hex"))
    save_settings(AppSettings(theme="nord", decoders=tuple(decoders.rules)), path)
    text = path.read_text()
    assert 'descriptor_set = "schemas/devices.pb"' in text  # still relative to the file
    again = load_settings(path)
    assert again.decoders == tuple(decoders.rules) and again.decoders[0].filter == "meters/7/raw"
    save_settings(AppSettings(), path)
    assert "decoders" not in path.read_text() and load_settings(path) == AppSettings()


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ('[[decoders]]\nfilter = "a/#"\ndecoder = "jsno"\n', 3, "decoders[0].decoder", "did you mean 'json'"),
        ('[[decoders]]\nfilter = "a/#/b"\ndecoder = "json"\n', 2, "decoders[0].filter", "'#'"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "json"\n\n[[decoders]]\ndecoder = "cbor"\n', 5, "decoders[1]",
         "needs a filter"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "json"\nstruct = "<h"\n', 4, "decoders[0].struct",
         "only used with the struct decoder"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "struct"\nstruct = "<q!"\n', 4, "decoders[0].struct",
         "not a struct format"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "struct"\nstruct = "<hh"\nfields = ["x"]\n', 5,
         "decoders[0].fields", "2 values but 1 field names"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "command"\ncommand = "run me"\n', 4, "decoders[0].command",
         "array of strings"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "command"\ncommand = ["x"]\ntimeout = 600\n', 5,
         "decoders[0].timeout", "at most 60 seconds"),
        ('[[decoders]]\nfilter = "a"\ndecoder = "json"\nfitler = "b"\n', 4, "decoders[0].fitler",
         "did you mean 'filter'"),
        ('decoders = "json"\n', 1, "decoders", "must be [[decoders]] tables"),
        ('decoders = [1]\n', 1, "decoders[0]", "must be a table"),
    ],
)  # fmt: skip
def test_rule_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, fragment: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    error = info.value
    assert (error.file, error.line, error.key) == (str(path), line, key), str(error)
    assert fragment in str(error)


def test_save_refuses_invalid_rules(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"decoders: \[0\].decoder: unknown decoder"):
        save_settings(AppSettings(decoders=(DecoderRule("a", "nope"),)), tmp_path / "settings.toml")
    assert not (tmp_path / "settings.toml").exists()
