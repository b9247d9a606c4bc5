"""Saved publish templates (templates.toml) in the publish pane, and the theme kept in settings.toml."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.command import CommandList
from textual.widgets import Input, Select, Switch, TextArea

from mqttchat.config import (
    AppSettings,
    ConfigError,
    PublishTemplate,
    delete_template,
    load_settings,
    load_templates,
    save_settings,
    save_template,
    settings_path,
    templates_path,
)
from mqttchat.config import templates as templates_module
from mqttchat.ui.screens.dialogs import ConfirmDialog, NameDialog
from mqttchat.ui.widgets.publish_pane import PublishPane
from tests.helpers.scenes import make_app
from tests.helpers.waiting import until

#: Tall enough that the whole publish form, templates included, is on screen.
SIZE = (120, 80)

FULL = PublishTemplate(
    name="light on",
    topic="home/kitchen/light",
    payload='{\n  "on": true,\n  "n": {{counter}}\n}',
    qos=2,
    retain=True,
    content_type="application/json",
    user_properties=(("source", "bench"), ("source", "again"), ("k", "a=b")),
    message_expiry_interval=60,
    response_topic="replies/me",
    correlation_data="req-1",
)


def notes(app: App[Any]) -> list[str]:
    return [f"{note.title} {note.message}" for note in app._notifications]


def form(pane: PublishPane) -> dict[str, object]:
    """What the publish form shows, field by field."""
    return {
        "topic": pane.query_one("#pub-topic", Input).value,
        "payload": pane.query_one("#pub-payload", TextArea).text,
        "qos": pane.query_one("#pub-qos", Select).value,
        "retain": pane.query_one("#pub-retain", Switch).value,
        "content_type": pane.query_one("#pub-content-type", Input).value,
        "user_props": pane.query_one("#pub-user-props", Input).value,
        "expiry": pane.query_one("#pub-expiry", Input).value,
        "response_topic": pane.query_one("#pub-response-topic", Input).value,
        "correlation": pane.query_one("#pub-correlation", Input).value,
    }


def options_of(pane: PublishPane) -> list[str]:
    return list(pane.templates)


# --------------------------------------------------------------------------------------------------------------
# Templates in the app


async def test_save_reload_choose_and_delete_a_template() -> None:
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("p")
        pane = app.screen.query_one(PublishPane)
        assert pane.templates_path == templates_path()  # in the test's config directory (conftest)
        assert options_of(pane) == []
        pane.query_one("#pub-topic", Input).value = "home/kitchen/light"
        pane.query_one("#pub-payload", TextArea).text = '{"on": true, "n": {{counter}}}'
        pane.query_one("#pub-qos", Select).value = 2
        pane.query_one("#pub-retain", Switch).value = True
        pane.query_one("#pub-content-type", Input).value = "application/json"
        pane.query_one("#pub-user-props", Input).value = "source=bench; k=a=b"
        pane.query_one("#pub-expiry", Input).value = "60"
        pane.query_one("#pub-response-topic", Input).value = "replies/me"
        pane.query_one("#pub-correlation", Input).value = "req-1"
        await pilot.pause()
        await pilot.click("#pub-template-save")
        await until(lambda: isinstance(app.screen, NameDialog), pilot=pilot)
        await pilot.press("enter")  # no name yet: the dialog says so and stays open
        assert isinstance(app.screen, NameDialog)
        assert "needs a name" in str(app.screen.query_one("#name-error").render())
        app.screen.query_one("#name", Input).value = "light on"
        await pilot.press("enter")
        await until(lambda: not isinstance(app.screen, NameDialog), pilot=pilot)
        await pilot.pause()
        assert any("saved template 'light on'" in note for note in notes(app))
        assert load_templates() == {
            "light on": PublishTemplate(
                name="light on",
                topic="home/kitchen/light",
                payload='{"on": true, "n": {{counter}}}',  # placeholders are kept
                qos=2,
                retain=True,
                content_type="application/json",
                user_properties=(("source", "bench"), ("k", "a=b")),
                message_expiry_interval=60,
                response_topic="replies/me",
                correlation_data="req-1",
            )
        }
        assert options_of(pane) == ["light on"]
        assert pane.selected_template() == "light on"

    # A new app reads the file: the template is listed; choosing it fills the form.
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("p")
        pane = app.screen.query_one(PublishPane)
        assert options_of(pane) == ["light on"]
        assert pane.selected_template() is None
        assert form(pane)["topic"] == ""
        await pilot.click("#pub-template")  # opens the list: the prompt, then the template
        await pilot.press("down", "down", "enter")  # the first down highlights the prompt
        await pilot.pause()
        assert pane.selected_template() == "light on"
        assert form(pane) == {
            "topic": "home/kitchen/light",
            "payload": '{"on": true, "n": {{counter}}}',
            "qos": 2,
            "retain": True,
            "content_type": "application/json",
            "user_props": "source=bench; k=a=b",
            "expiry": "60",
            "response_topic": "replies/me",
            "correlation": "req-1",
        }

        # Deleting asks first; cancelling keeps the template.
        await pilot.click("#pub-template-delete")
        await until(lambda: isinstance(app.screen, ConfirmDialog), pilot=pilot)
        await pilot.click("#cancel")
        await until(lambda: not isinstance(app.screen, ConfirmDialog), pilot=pilot)
        assert list(load_templates()) == ["light on"]
        await pilot.click("#pub-template-delete")
        await until(lambda: isinstance(app.screen, ConfirmDialog), pilot=pilot)
        await pilot.click("#ok")
        await until(lambda: not isinstance(app.screen, ConfirmDialog), pilot=pilot)
        await pilot.pause()
        assert load_templates() == {}
        assert options_of(pane) == []
        assert pane.selected_template() is None
        assert any("deleted template 'light on'" in note for note in notes(app))
        assert form(pane)["topic"] == "home/kitchen/light"  # the form itself is left as it was


async def test_saving_under_an_existing_name_replaces_it() -> None:
    save_template(PublishTemplate("a", topic="one"))
    save_template(PublishTemplate("b", topic="two"))
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("p")
        pane = app.screen.query_one(PublishPane)
        pane.query_one("#pub-template", Select).value = "a"
        await until(lambda: form(pane)["topic"] == "one", pilot=pilot)
        pane.query_one("#pub-topic", Input).value = "three"
        await pilot.click("#pub-template-save")
        await until(lambda: isinstance(app.screen, NameDialog), pilot=pilot)
        assert app.screen.query_one("#name", Input).value == "a"  # the chosen template's name is offered
        await pilot.press("enter")
        await until(lambda: not isinstance(app.screen, NameDialog), pilot=pilot)
        await until(lambda: any("replaced template 'a'" in note for note in notes(app)), pilot=pilot)
        assert [(t.name, t.topic) for t in load_templates().values()] == [("a", "three"), ("b", "two")]


async def test_delete_without_a_chosen_template_says_so() -> None:
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("p")
        await pilot.click("#pub-template-delete")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        assert any("choose a template" in note for note in notes(app))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[templates.a]\ntopic = "a"\n\nqos = "high"\n', 4, "templates.a.qos: must be an integer"),
        ('[templates.a]\ntopic = "a"\nqos = \n', 3, "invalid TOML"),
        ('[templates.a]\ntopic = "a/#"\n', 2, "wildcard"),
    ],
)
async def test_a_malformed_templates_file_is_a_notification_naming_file_and_line(
    text: str, line: int, fragment: str
) -> None:
    path = templates_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(lambda: bool(app._notifications), pilot=pilot)
        (note,) = [note for note in app._notifications if "templates" in note.title]
        assert f"{path}:{line}:" in note.message and fragment in note.message, note.message
        assert note.severity == "error"
        await pilot.press("p")
        pane = app.screen.query_one(PublishPane)
        assert options_of(pane) == []

        # Saving does not overwrite the broken file: it says why instead.
        pane.query_one("#pub-topic", Input).value = "x"
        pane.save_template_as("new")
        await pilot.pause()
        assert path.read_text() == text
        assert sum(f"{path}:{line}:" in n for n in notes(app)) == 2


async def test_an_unwritable_templates_file_is_a_notification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "templates.toml"

    def full_disk(file: Path, text: str, *, private: bool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(templates_module, "write_atomically", full_disk)

    class PaneApp(App[None]):
        def compose(self) -> ComposeResult:
            yield PublishPane(templates_path=path)

    app = PaneApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        pane = app.query_one(PublishPane)
        assert not app._notifications
        pane.query_one("#pub-topic", Input).value = "a/b"
        pane.save_template_as("x")
        await pilot.pause()
        (note,) = list(app._notifications)
        assert note.title == "Cannot save the template" and note.severity == "error"
        assert note.message == f"No space left on device: {path}"
        assert options_of(pane) == []


async def test_a_templates_path_that_cannot_be_read_is_a_notification(tmp_path: Path) -> None:
    class PaneApp(App[None]):
        def compose(self) -> ComposeResult:
            yield PublishPane(templates_path=tmp_path)  # a directory

    app = PaneApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        (note,) = list(app._notifications)
        assert f"{tmp_path}: cannot read the file" in note.message and note.severity == "error"


async def test_a_form_that_cannot_be_saved_is_explained(tmp_path: Path) -> None:
    class PaneApp(App[None]):
        def compose(self) -> ComposeResult:
            yield PublishPane(templates_path=tmp_path / "templates.toml")

    app = PaneApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        pane = app.query_one(PublishPane)
        pane.query_one("#pub-user-props", Input).value = "no equals sign"
        await pilot.click("#pub-template-save")
        await pilot.pause()
        assert not isinstance(app.screen, NameDialog)  # nothing to name: the problem is shown first
        assert any("is not name=value" in note for note in notes(app))
        app.clear_notifications()  # the toast could cover the button
        await pilot.pause()
        pane.query_one("#pub-user-props", Input).value = ""
        pane.query_one("#pub-topic", Input).value = "a/+/b"
        await pilot.click("#pub-template-save")
        await pilot.pause()
        assert not isinstance(app.screen, NameDialog)
        assert any("topic: topic name 'a/+/b' contains a wildcard" in note for note in notes(app))
        pane.save_template_as("wild")  # the same check when saving
        await pilot.pause()
        assert sum("wildcard" in note for note in notes(app)) == 2
        assert not (tmp_path / "templates.toml").exists()


async def test_pane_with_an_explicit_templates_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "templates.toml"
    save_template(FULL, path)

    class PaneApp(App[None]):
        def compose(self) -> ComposeResult:
            yield PublishPane(templates_path=path)

    app = PaneApp()
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(PublishPane)
        assert options_of(pane) == ["light on"]
        pane.query_one("#pub-template", Select).value = "light on"
        await pilot.pause()
        assert pane.template_from_form("light on") == FULL
        assert form(pane)["user_props"] == "source=bench; source=again; k=a=b"
        draft = pane.validated()
        assert draft is not None and draft.qos == 2 and draft.retain
        assert list(draft.properties.user_property or ()) == [("source", "bench"), ("source", "again"), ("k", "a=b")]
        assert draft.properties.message_expiry_interval == 60
        assert draft.properties.correlation_data == b"req-1"
    assert not templates_path().exists()


# --------------------------------------------------------------------------------------------------------------
# The templates file


def test_templates_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    assert load_templates(path) == {}
    minimal = PublishTemplate("empty")
    save_template(FULL, path)
    save_template(minimal, path)
    assert load_templates(path) == {"light on": FULL, "empty": minimal}
    text = path.read_text()
    assert '[templates."light on"]' in text and "[templates.empty]" in text
    assert "content_type" not in text.partition("[templates.empty]")[2]  # unset properties are left out
    save_template(PublishTemplate("light on", topic="x"), path)  # replaced in place
    assert [(t.name, t.topic) for t in load_templates(path).values()] == [("light on", "x"), ("empty", "")]
    assert delete_template("light on", path)
    assert not delete_template("light on", path)
    assert list(load_templates(path)) == ["empty"]
    assert delete_template("empty", path)
    assert load_templates(path) == {}
    assert path.read_text() == ""
    assert [p.name for p in tmp_path.iterdir()] == ["templates.toml"]  # no temporary files left


def test_templates_default_path_is_in_the_config_directory() -> None:
    assert templates_path() == settings_path().with_name("templates.toml")
    save_template(PublishTemplate("a"))
    assert templates_path().is_file()
    assert list(load_templates()) == ["a"]


def test_save_template_rejects_an_invalid_one(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    for template, fragment in [
        (PublishTemplate(" a"), "name: must not start or end with blanks"),
        (PublishTemplate(""), "needs a name"),
        (PublishTemplate("a", topic="a/#"), "topic: topic name 'a/#' contains a wildcard"),
        (PublishTemplate("a", qos=3), "qos: must be 0, 1 or 2"),
        (PublishTemplate("a", response_topic="r/+"), "response_topic:"),
        (PublishTemplate("a", user_properties=(("", "v"),)), "user_properties: a user property needs a name"),
        (PublishTemplate("a", message_expiry_interval=-1), "message_expiry_interval: must be an integer"),
        (PublishTemplate("a", content_type="a\x00b"), "content_type: must not contain U+0000"),
    ]:
        with pytest.raises(ValueError, match="template") as info:
            save_template(template, path)
        assert fragment in str(info.value), str(info.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ('[templates.a]\ntopic = "a"\nqos = "high"\n', 3, "templates.a.qos", "must be an integer"),
        ('[templates.a]\ntopic = "a"\n\nretian = true\n', 4, "templates.a.retian", "did you mean 'retain'"),
        ("[templates.a]\nqos = 5\n", 2, "templates.a.qos", "must be 0, 1 or 2"),
        ('[templates.a]\nuser_properties = [["k"]]\n', 2, "templates.a.user_properties", "[name, value] pairs"),
        ('[templates.a]\nuser_properties = { k = "v" }\n', 2, "templates.a.user_properties", "not a table"),
        ("[templates.a]\nmessage_expiry_interval = -5\n", 2, "templates.a.message_expiry_interval", "between 0"),
        ("[templates]\na = 3\n", 2, "templates.a", "must be a table"),
        ('[templates."b\\u0001"]\ntopic = "x"\n', 1, 'templates."b\\u0001"', "control characters"),
        ("templates = 3\n", 1, "templates", "must be a table"),
        ("[template.a]\n", 1, "template", "did you mean 'templates'"),
        ('[templates.a]\ntopic = "a"\n\n[templates.b]\ntopic = "b"\npayload = \n', 6, None, "invalid TOML"),
    ],
)
def test_templates_file_errors(tmp_path: Path, text: str, line: int, key: str | None, fragment: str) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_templates(path)
    error = info.value
    assert (error.file, error.line, error.key) == (str(path), line, key), str(error)
    assert fragment in str(error)
    with pytest.raises(ConfigError):  # a broken file is never overwritten
        save_template(PublishTemplate("new"), path)
    with pytest.raises(ConfigError):
        delete_template("a", path)
    assert path.read_text() == text


def test_templates_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_bytes(b'[templates.a]\ntopic = "\xff"\n')
    with pytest.raises(ConfigError, match=r"templates.toml:2: not UTF-8"):
        load_templates(path)


# --------------------------------------------------------------------------------------------------------------
# Theme


async def test_the_theme_from_the_settings_is_applied_at_start() -> None:
    save_settings(AppSettings(theme="nord", flush_hz=7))
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
        assert not app._notifications
    assert load_settings() == AppSettings(theme="nord", flush_hz=7)  # applying it wrote nothing back


async def test_without_settings_the_default_theme_and_no_file() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == AppSettings().theme == "textual-dark"
    assert not settings_path().exists()


async def test_changing_the_theme_saves_it_and_keeps_the_other_settings() -> None:
    save_settings(AppSettings(flush_hz=7, chat_nick="alice"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "gruvbox"
        await pilot.pause()
        assert load_settings() == AppSettings(theme="gruvbox", flush_hz=7, chat_nick="alice")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "gruvbox"


async def test_change_theme_from_the_command_palette_is_saved() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.action_change_theme()
        await pilot.pause()
        await pilot.press(*"textual-light")
        # The palette searches in the background: wait until the only hit is listed.
        await until(lambda: app.screen.query_one(CommandList).option_count == 1, pilot=pilot)
        await pilot.press("enter")
        await until(lambda: app.theme == "textual-light", pilot=pilot)
        await pilot.pause()
    assert load_settings().theme == "textual-light"


async def test_an_unknown_theme_falls_back_with_a_notification() -> None:
    save_settings(AppSettings(theme="no-such-theme"))
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(lambda: len(app._notifications) > 0, pilot=pilot)
        assert app.theme == "textual-dark"
        (note,) = list(app._notifications)
        assert "no-such-theme" in note.message and "textual-dark" in note.message and note.severity == "warning"
        app.theme = "textual-dark"  # no change: nothing is written
        await pilot.pause()
        assert load_settings().theme == "no-such-theme"
        app.theme = "nord"  # the user chose one: it replaces the unknown name
        await until(lambda: load_settings().theme == "nord", pilot=pilot)


async def test_unreadable_settings_are_a_notification_and_not_overwritten() -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('theme = "nord"\nflush_hz = "fast"\n')
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(lambda: len(app._notifications) > 0, pilot=pilot)
        assert app.theme == "textual-dark"
        (note,) = list(app._notifications)
        assert f"{path}:2:" in note.message and note.severity == "error"
        app.theme = "nord"
        await until(lambda: any("the theme is not saved" in n and f"{path}:2:" in n for n in notes(app)), pilot=pilot)
    assert path.read_text() == 'theme = "nord"\nflush_hz = "fast"\n'
