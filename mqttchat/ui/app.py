"""MQTTChatApp: wires the runtime (client, embedded broker, models) to the screens, and flushes at ~15 Hz."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import ClassVar

from textual import on, work
from textual.actions import SkipAction
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import TextArea
from textual.worker import Worker, WorkerState

from mqttchat.client import ClientError, ClientOptions
from mqttchat.config import AppSettings, ConfigError, Profile, load_settings, save_settings, settings_path
from mqttchat.protocol import MQTTError, ProtocolVersion
from mqttchat.runtime import ConnectFailure, Runtime, credentials_refused
from mqttchat.ui.safe import notify_text
from mqttchat.ui.screens.chat import ChatScreen
from mqttchat.ui.screens.dialogs import HostQuitDialog, PasswordDialog
from mqttchat.ui.screens.main import MainScreen
from mqttchat.ui.widgets.view_tabs import ViewTabs
from mqttchat.untrusted import prepare


def configure_gc() -> None:
    """Keep full garbage collections out of the way of the screen.

    The explorer holds hundreds of thousands of long-lived objects (topic nodes, history entries); a full
    collection walks all of them and stalled the event loop for 400+ ms. They never become garbage while the
    app runs, so automatic collection is limited to the young generations (which free short-lived cycles) and a
    full pass runs only when traffic is quiet (see ``_quiet_gc``). Each flush freezes what survived so far
    (see ``flush``): objects freed by reference counting are freed as usual; only cycle detection skips them.
    """
    gc.collect()
    gc.freeze()  # everything loaded at start-up is permanent
    gc.set_threshold(2_000, 10, 2**30)  # small young generations: each pass stays around a millisecond


#: Seconds after subscribing without any retained message before the app says what that may mean.
RETAINED_WAIT = 3.0


class MQTTChatApp(App[None]):
    """The terminal MQTT explorer (and chat).

    The client's reader writes into the runtime's models; a timer takes what changed and updates the widgets
    inside one ``batch_update()``. Nothing is rendered per packet, so a busy broker cannot stall the screen or
    the client's acknowledgements.
    """

    CSS_PATH = "app.tcss"
    TITLE = "mqttchat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "toggle_help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        # Before the key reaches the focused widget: as the screen's ordinary bindings, Tab moved the focus only
        # after the key had bubbled up through the field, so the keys behind it in the same terminal read (a
        # paste, a fast typist) landed in the field it was leaving.
        Binding("tab", "focus_next_now", "Focus Next", show=False, priority=True),
        Binding("shift+tab", "focus_previous_now", "Focus Previous", show=False, priority=True),
    ]

    def _tab_moves_focus(self) -> None:
        """A field that takes Tab itself (a text area that indents) keeps it: the key goes on to it as usual."""
        focused = self.focused
        if isinstance(focused, TextArea) and focused.tab_behavior == "indent":
            raise SkipAction()

    def action_focus_next_now(self) -> None:
        self._tab_moves_focus()
        self.action_focus_next()

    def action_focus_previous_now(self) -> None:
        self._tab_moves_focus()
        self.action_focus_previous()

    def __init__(
        self,
        runtime: Runtime,
        *,
        connect: bool = True,
        flush_hz: float = 15.0,
        demo: bool = False,
        view: str = "explorer",
    ) -> None:
        super().__init__()
        self.runtime = runtime
        runtime.notice = self._notice
        self.initial_view = view
        #: The chat connects when its view is first shown (or at start with ``mqttchat chat``).
        self.chat_wanted = view == "chat"
        self.demo = demo
        self.connect_on_start = connect
        self.flush_hz = flush_hz
        self._ticks = 0
        #: How many times the refresh timer fired (whatever screen is showing): tests type between refreshes.
        self.flush_count = 0
        self._last_tick = 0.0
        self._help = False
        self._generation = 0
        self._chat_starting = False
        #: The theme in the settings file; None until :meth:`apply_settings_theme` has run.
        self._settings_theme: str | None = None

    def on_mount(self) -> None:
        self.apply_settings_theme()
        configure_gc()
        # The tables that neutralise network text, made now rather than when the first multi-line or non-ASCII
        # payload is shown in the middle of a flood (they took 50-120 ms then).
        prepare("\n", "\n\t")
        self.set_interval(600, self._quiet_gc)
        self._add_view_modes()
        self.switch_mode(self._mode(self.initial_view))
        self.set_interval(1 / self.flush_hz, self.flush)
        if self.connect_on_start:
            self.start_runtime()

    def apply_settings_theme(self) -> None:
        """Use the theme of the settings; unreadable settings or an unknown theme are reported, and the default used."""
        default = AppSettings().theme
        try:
            saved = load_settings().theme
        except ConfigError as exc:
            notify_text(self, str(exc), title="Cannot read the settings", severity="error", timeout=15)
            saved = default
        theme = saved
        if theme not in self.available_themes:
            notify_text(self, f"unknown theme {theme!r} in {settings_path()}: using {default!r}", severity="warning")
            theme = default
        self.theme = theme
        self._settings_theme = saved  # only now, so that applying it does not write it back

    def watch_theme(self, theme: str) -> None:
        """Save a theme the user chose (e.g. with "Change theme" in the command palette) in the settings."""
        if self._settings_theme is None or theme == self._settings_theme:
            return
        try:
            save_settings(replace(load_settings(), theme=theme))
        except (ConfigError, ValueError, OSError) as exc:
            notify_text(self, f"the theme is not saved: {exc}", severity="error", timeout=15)
            return
        self._settings_theme = theme

    @work(exclusive=True, group="mqtt", exit_on_error=False)
    async def start_runtime(self) -> None:
        if self.demo:
            try:
                await self.runtime.start_demo()
            except (ClientError, MQTTError, OSError) as exc:
                self._cannot_connect(exc)
                return
        elif not await self._connect():
            return
        if self.runtime.version_notice:
            notify_text(self, self.runtime.version_notice, severity="warning", timeout=15)
        for notice in self.runtime.notices:
            notify_text(self, notice, severity="warning", timeout=15)
        if not self.demo:
            self.set_timer(RETAINED_WAIT, self._say_retained_note)
        broker = self.runtime.broker
        if self.demo and broker is not None:
            notify_text(self, f"Demo: a simulated house publishes to the embedded broker on {broker.url}")
        elif broker is not None:
            notify_text(self, f"No broker was running: started the embedded broker on {broker.url}")
        if self.chat_wanted:
            await self._start_chat()

    def _say_retained_note(self) -> None:
        """Over 3.1.1 (where brokers with this habit are) a toast; the Broker tab says it in any case."""
        caps = self.runtime.client.capabilities
        note = self.runtime.retained_note()
        if note and caps is not None and caps.version == ProtocolVersion.MQTT_3_1_1 and self.runtime.broker is None:
            notify_text(self, note[0].upper() + note[1:], severity="warning", timeout=15)

    async def _connect(self) -> bool:
        """Connect the runtime, trying again with backoff while that may help (the status bar says why the last
        attempt failed and when the next one is made); whether it connected."""
        try:
            await self.runtime.start_retrying(self._attempt_failed)
        except (ClientError, MQTTError, OSError) as exc:
            self._cannot_connect(exc)
            return False
        return True

    def _attempt_failed(self, failure: ConnectFailure) -> None:
        if failure.attempts == 1 and failure.retry_at is not None:
            notify_text(self, f"cannot connect: {failure.error}; trying again (the status bar says when)",
                        severity="warning", timeout=10)  # fmt: skip

    def _cannot_connect(self, exc: BaseException) -> None:
        """Connecting failed for good: ask for the password the broker wants, or say why and what to do."""
        runtime = self.runtime
        runtime.chat_error = f"cannot connect: {exc}"
        if credentials_refused(exc) and not runtime.options.effective_password:
            self.ask_password(exc)
            return
        hint = "; press c to change the connection" if isinstance(self.screen, MainScreen) else ""
        notify_text(self, f"cannot connect: {exc}{hint}", severity="error", timeout=15)

    def ask_password(self, refusal: BaseException) -> None:
        """The broker refused a connection made without a password: ask for one and connect with it."""
        options = self.runtime.options

        def answered(password: str | None) -> None:
            if password:
                self.reconnect_with_password(password)

        dialog = PasswordDialog(options.target.url, options.effective_username, str(refusal))
        self.push_screen(dialog, answered)

    def ensure_chat(self) -> None:
        """The chat view is showing: connect the chat if that has not happened yet."""
        self.chat_wanted = True
        runtime = self.runtime
        if runtime.chat is None and runtime.client.connected:
            self.start_chat()

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def start_chat(self) -> None:
        await self._start_chat()

    async def _start_chat(self) -> None:
        runtime = self.runtime
        if runtime.chat is not None or self._chat_starting:
            return
        self._chat_starting = True
        try:
            chat = await runtime.start_chat()
        except (ClientError, MQTTError, OSError) as exc:
            runtime.chat_error = f"cannot connect the chat: {exc}"
            notify_text(self, runtime.chat_error, severity="error", timeout=15)
            return
        finally:
            self._chat_starting = False
        notify_text(self, f"chatting as {chat.nick} in {', '.join(chat.joined) or 'no room'}: /help for commands")

    def _screen_factory(self, view: str) -> Callable[[], Screen[None]]:
        if view == "chat":
            return lambda: ChatScreen(self.runtime)
        return lambda: MainScreen(self.runtime)

    def action_show_view(self, view: str) -> None:
        """Switch between the explorer and the chat (Ctrl+T)."""
        if self.current_mode != self._mode(view):
            self.switch_mode(self._mode(view))

    @property
    def current_view(self) -> str:
        return self.current_mode.partition("-")[0]

    def _mode(self, view: str) -> str:
        return f"{view}-{self._generation}"

    def _add_view_modes(self) -> None:
        """One Textual mode per view; a new connection gets new ones (a mode's base screen cannot be replaced)."""
        for view in ("explorer", "chat"):
            self.add_mode(self._mode(view), self._screen_factory(view))

    @on(ViewTabs.ViewChosen, "#view-tabs")
    def _view_chosen(self, event: ViewTabs.ViewChosen) -> None:
        self.action_show_view(event.view)

    @work(exclusive=True, group="mqtt", exit_on_error=False)
    async def switch_profile(self, profile: Profile) -> None:
        """Disconnect and connect again with ``profile``, on a fresh screen."""
        try:
            options = profile.to_client_options()
        except ValueError as exc:
            notify_text(self, f"cannot use profile {profile.name!r}: {exc}", severity="error", timeout=10)
            return
        # the profile names the broker; the largest packet accepted stays the app's (settings, --max-packet-size)
        options = replace(options, maximum_packet_size=self.runtime.options.maximum_packet_size)
        subscriptions, changes = profile.guarded_subscriptions()
        # A cloud service that would close the connection for these: what was changed, said once connected.
        await self._switch(options, subscriptions, profile.name, tuple(changes))

    @work(exclusive=True, group="mqtt", exit_on_error=False)
    async def reconnect_with_password(self, password: str) -> None:
        """Connect again as before, with ``password`` (asked for when the broker refused a connection without)."""
        runtime = self.runtime
        await self._switch(replace(runtime.options, password=password), runtime.subscriptions, runtime.profile_name)

    async def _switch(
        self,
        options: ClientOptions,
        subscriptions: tuple[tuple[str, int], ...],
        profile_name: str | None,
        notices: tuple[str, ...] = (),
    ) -> None:
        """Disconnect, and connect with ``options`` on fresh screens (a mode's base screen cannot be replaced)."""
        old = self.runtime
        await old.stop()
        self.runtime = Runtime(options, subscriptions, embed_broker=old.embed_broker, chat_nick=old.chat_nick,
                               chat_rooms=old.chat_rooms, chat_session_expiry=old.chat_session_expiry,
                               profile_name=profile_name, decoder_rules=tuple(old.decoders.rules),
                               notices=notices)  # fmt: skip
        self.runtime.notice = self._notice
        old_modes = [self._mode(view) for view in ("explorer", "chat")]
        self._generation += 1
        self._add_view_modes()
        await self.switch_mode(self._mode(self.current_view))
        for mode in old_modes:  # their screens belonged to the old connection
            await self.remove_mode(mode)
        user = options.effective_username
        notify_text(self, f"connecting to {options.target.url}{f' as {user}' if user else ''}")
        if not await self._connect():
            return
        if self.runtime.version_notice:
            notify_text(self, self.runtime.version_notice, severity="warning", timeout=15)
        for notice in self.runtime.notices:
            notify_text(self, notice, severity="warning", timeout=15)
        if self.chat_wanted:
            await self._start_chat()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place where an unexpected worker failure becomes a notification instead of a traceback."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            notify_text(
                self, f"{event.worker.name or 'task'} failed: {event.worker.error}", severity="error", timeout=10
            )

    def flush(self) -> None:
        """Move what the models gained since the last flush onto the screen."""
        self.flush_count += 1
        try:
            screen = self.screen
        except ScreenStackError:  # starting, switching mode or shutting down: no screen to update yet
            return
        if not isinstance(screen, (MainScreen, ChatScreen)) or not screen.ready:
            return
        dirty = self.runtime.tree.consume_changes()
        now = time.time()
        self._ticks += 1
        slow = self._ticks % max(1, int(self.flush_hz // 2)) == 0
        if now - self._last_tick >= 1.0:
            self._last_tick = now
            self.runtime.tick(now)
        with self.batch_update(), contextlib.suppress(NoMatches):  # NoMatches: the screen is being torn down
            screen.flush(dirty, slow)
        # Collect the cycles made since the last flush, then set what survived aside (history entries, topic
        # nodes: long-lived), so that each young collection walks one flush's worth of objects. Under a 20,000
        # msg/s flood the young generations otherwise held tens of thousands of entries, and a collection of
        # them took 40-70 ms.
        gc.collect(1)
        gc.freeze()

    def _quiet_gc(self) -> None:
        """Every ten minutes, when fewer than 100 messages a second arrive, free old-generation cycles."""
        if self.runtime.rates.in_per_s < 100:
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def action_toggle_help(self) -> None:
        if self._help:
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()
        self._help = not self._help

    def _notice(self, text: str) -> None:
        """Something the runtime did on its own (it took over hosting the broker)."""
        self.notify(text, timeout=10, markup=False)

    async def action_quit(self) -> None:
        """Quit; when this instance hosts the broker for others, first say who and what happens to them."""
        if isinstance(self.screen, HostQuitDialog):  # Ctrl+Q again in the dialog: the user means it
            self.screen.dismiss("yes")
            return
        peers = self.runtime.hosted_peers()
        if peers:
            self.push_screen(HostQuitDialog(self.runtime, peers), self._quit_answered)
            return
        await self._quit()

    async def _quit_answered(self, answer: str | None) -> None:
        if answer == "yes":
            await self._quit()

    async def _quit(self) -> None:
        try:
            await self.runtime.stop()
        finally:
            self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            yield from screen.system_commands()
