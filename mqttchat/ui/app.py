"""MQTTChatApp: wires the runtime (client, embedded broker, models) to the screens, and flushes at ~15 Hz."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import TextArea
from textual.worker import Worker, WorkerState

from mqttchat.client import ClientError, ClientOptions, Status
from mqttchat.config import AppSettings, ConfigError, Profile, load_settings, save_settings, settings_path
from mqttchat.explorer.budget import headroom, share_budget
from mqttchat.protocol import MQTTError, ProtocolVersion
from mqttchat.runtime import ConnectFailure, Runtime, credentials_refused
from mqttchat.ui.safe import notify_text
from mqttchat.ui.screens.chat import ChatScreen
from mqttchat.ui.screens.dialogs import HostQuitDialog, PasswordDialog
from mqttchat.ui.screens.main import MainScreen
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from mqttchat.ui.widgets.view_tabs import ViewEntry, ViewTabs, default_entries
from mqttchat.untrusted import prepare, printable


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


#: Seconds a thread may keep the GIL while another waits for it (Python's default: 0.005). The lasting history's
#: writer thread runs Python between its SQLite statements (a batch's tuples), and the event loop gives the GIL up
#: at every system call (each read, write and wait): at 5 ms it waited up to that long to get it back, several
#: times a turn. At 1 ms the worst stall of benchmarks.ui's flood through the embedded broker with the history was
#: 17-43 ms where it was 28-50 ms, alternated runs in one window.
SWITCH_INTERVAL = 0.001


def configure_switching() -> None:
    """Let the event loop have the GIL back soon when another thread (the history writer) holds it."""
    sys.setswitchinterval(SWITCH_INTERVAL)


#: Seconds after subscribing without any retained message before the app says what that may mean.
RETAINED_WAIT = 3.0

#: The dot before a broker's name in its tab, with several brokers open.
_DOT_STYLE = {
    Status.CONNECTED: "green",
    Status.CONNECTING: "yellow",
    Status.RECONNECTING: "yellow",
}


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
        others: Sequence[Runtime] = (),
    ) -> None:
        super().__init__()
        #: The broker the chat sits on (the first one open, unless the user moved the chat).
        self.runtime = runtime
        #: Every broker open, in the order of their tabs (``runtime`` among them).
        self.runtimes: list[Runtime] = [runtime, *others]
        for each in self.runtimes:
            each.notice = self._notice
        #: The one history budget of the explorer, shared by the brokers open (see mqttchat.explorer.budget).
        self.history_total = runtime.tree.history_budget
        self._serials: dict[int, int] = {}  # id(runtime) -> its number, in its mode's and tab's names
        self._serial_count = 0
        self._chat_generation = 0
        #: The explorer shown last: Ctrl+T from the chat comes back to it.
        self._last_explorer = runtime
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
        self._chat_starting = False
        self._retabbing = False
        #: The theme in the settings file; None until :meth:`apply_settings_theme` has run.
        self._settings_theme: str | None = None

    def on_mount(self) -> None:
        self.apply_settings_theme()
        configure_gc()
        configure_switching()
        # The tables that neutralise network text, made now rather than when the first multi-line or non-ASCII
        # payload is shown in the middle of a flood (they took 50-120 ms then).
        prepare("\n", "\n\t")
        self.set_interval(600, self._quiet_gc)
        for runtime in self.runtimes:
            self._add_explorer_mode(runtime)
        self._add_chat_mode()
        self.switch_mode(self._chat_mode() if self.initial_view == "chat" else self._explorer_mode(self.runtime))
        self._share_budget()
        self.set_interval(1 / self.flush_hz, self.flush)
        if self.connect_on_start:
            self.start_runtime()
            for runtime in self.runtimes[1:]:
                self._start_broker(runtime)

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

    def _group(self, runtime: Runtime) -> str:
        """The worker group of a broker's connection jobs: a new job (a new profile) cancels the one running."""
        return f"mqtt-{self._serial(runtime)}"

    def start_runtime(self) -> Worker[None]:
        """Connect the first broker (or start the demo): the embedded broker if needed, the chat if wanted."""
        return self.run_worker(self._start_first(), name="start_runtime", group=self._group(self.runtime),
                               exclusive=True, exit_on_error=False)  # fmt: skip

    async def _start_first(self) -> None:
        runtime = self.runtime
        if self.demo:
            try:
                await runtime.start_demo()
            except (ClientError, MQTTError, OSError) as exc:
                self._cannot_connect(runtime, exc)
                return
        elif not await self._connect(runtime):
            return
        self._say_notices(runtime)
        if not self.demo:
            self.set_timer(RETAINED_WAIT, self._say_retained_note)
        broker = runtime.broker
        if self.demo and broker is not None:
            notify_text(self, f"Demo: a simulated house publishes to the embedded broker on {broker.url}")
        elif broker is not None:
            notify_text(self, f"No broker was running: started the embedded broker on {broker.url}")
        if self.chat_wanted:
            await self._start_chat()

    def _start_broker(self, runtime: Runtime) -> None:
        """Connect a broker open beside the first, in a worker of its own (each broker's attempts go on alone)."""

        async def connect() -> None:
            if await self._connect(runtime):
                self._say_notices(runtime)
                if runtime.broker is not None:
                    notify_text(self, f"No broker was running: started the embedded broker on {runtime.broker.url}")
                if runtime is self.runtime and self.chat_wanted:
                    await self._start_chat()

        name = f"connecting to {runtime.options.target.url}"
        self.run_worker(connect(), name=name, group=self._group(runtime), exclusive=True, exit_on_error=False)

    def _say_notices(self, runtime: Runtime) -> None:
        if runtime.version_notice:
            notify_text(self, runtime.version_notice, severity="warning", timeout=15)
        for notice in runtime.notices:
            notify_text(self, notice, severity="warning", timeout=15)

    def _say_retained_note(self) -> None:
        """Over 3.1.1 (where brokers with this habit are) a toast; the Broker tab says it in any case."""
        caps = self.runtime.client.capabilities
        note = self.runtime.retained_note()
        if note and caps is not None and caps.version == ProtocolVersion.MQTT_3_1_1 and self.runtime.broker is None:
            notify_text(self, note[0].upper() + note[1:], severity="warning", timeout=15)

    async def _connect(self, runtime: Runtime) -> bool:
        """Connect ``runtime``, trying again with backoff while that may help (the status bar says why the last
        attempt failed and when the next one is made); whether it connected."""

        def failed(failure: ConnectFailure) -> None:
            self._attempt_failed(runtime, failure)

        try:
            await runtime.start_retrying(failed)
        except (ClientError, MQTTError, OSError) as exc:
            self._cannot_connect(runtime, exc)
            return False
        return True

    def _where(self, runtime: Runtime) -> str:
        """With several brokers open, which one a message is about ("prod: "); nothing with one."""
        return f"{self.broker_label(runtime)}: " if len(self.runtimes) > 1 else ""

    def _attempt_failed(self, runtime: Runtime, failure: ConnectFailure) -> None:
        if failure.attempts == 1 and failure.retry_at is not None:
            notify_text(self, f"{self._where(runtime)}cannot connect: {failure.error}; trying again (the status bar "
                        "says when)", severity="warning", timeout=10)  # fmt: skip

    def _cannot_connect(self, runtime: Runtime, exc: BaseException) -> None:
        """Connecting failed for good: ask for the password the broker wants, or say why and what to do."""
        runtime.chat_error = f"cannot connect: {exc}"
        if credentials_refused(exc) and not runtime.options.effective_password:
            self.ask_password(exc, runtime)
            return
        hint = "; press c to change the connection" if isinstance(self.screen, MainScreen) else ""
        notify_text(self, f"{self._where(runtime)}cannot connect: {exc}{hint}", severity="error", timeout=15)

    def ask_password(self, refusal: BaseException, runtime: Runtime | None = None) -> None:
        """The broker refused a connection made without a password: ask for one and connect with it."""
        runtime = runtime or self.runtime
        options = runtime.options

        def answered(password: str | None) -> None:
            if password:
                self.reconnect_with_password(password, runtime)

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
        where = f" on {self.broker_label(runtime)}" if len(self.runtimes) > 1 else ""
        rooms = ", ".join(chat.joined) or "no room"
        notify_text(self, f"chatting as {chat.nick} in {rooms}{where}: /help for commands")

    # ------------------------------------------------------------------------------------------ views and brokers

    def _index(self, runtime: Runtime) -> int | None:
        """Where ``runtime`` is among the brokers open (by identity: two connections may have equal settings)."""
        return next((i for i, each in enumerate(self.runtimes) if each is runtime), None)

    def _serial(self, runtime: Runtime) -> int:
        serial = self._serials.get(id(runtime))
        if serial is None:
            serial = self._serials[id(runtime)] = self._serial_count
            self._serial_count += 1
        return serial

    def _explorer_mode(self, runtime: Runtime) -> str:
        return f"explorer-{self._serial(runtime)}"

    def _chat_mode(self) -> str:
        return f"chat-{self._chat_generation}"

    def _add_explorer_mode(self, runtime: Runtime) -> None:
        """One Textual mode per broker's explorer; a new connection gets a new one (a mode's base screen cannot be
        replaced)."""
        self.add_mode(self._explorer_mode(runtime), lambda: MainScreen(runtime))

    def _add_chat_mode(self) -> None:
        runtime = self.runtime
        self.add_mode(self._chat_mode(), lambda: ChatScreen(runtime))

    def broker_label(self, runtime: Runtime) -> str:
        """The name of a broker's tab: its profile's name, or its address; numbered when two would read the same."""
        labels: dict[str, int] = {}
        for each in self.runtimes:
            target = each.options.target
            base = printable(each.profile_name or f"{target.host}:{target.port}", limit=32)
            labels[base] = labels.get(base, 0) + 1
            if each is runtime:
                return base if labels[base] == 1 else f"{base} ({labels[base]})"
        return printable(runtime.profile_name or runtime.options.target.host, limit=32)

    def view_entries(self) -> list[ViewEntry]:
        """The tabs at the top of each view: one per broker with several open, and the chat."""
        if len(self.runtimes) == 1:
            return default_entries()
        entries = []
        for runtime in self.runtimes:
            dot = ("● ", _DOT_STYLE.get(runtime.client.status, "red"))
            label = Text.assemble(dot, self.broker_label(runtime))
            entries.append(ViewEntry(f"broker-{self._serial(runtime)}", label))
        entries.append(ViewEntry("chat", Text(f"Chat ({self.broker_label(self.runtime)}) ^t")))
        return entries

    def view_id(self, screen: Screen[None]) -> str:
        """The tab of ``screen``'s view."""
        if isinstance(screen, MainScreen) and len(self.runtimes) > 1:
            return f"broker-{self._serial(screen.runtime)}"
        return "explorer" if isinstance(screen, MainScreen) else "chat"

    def _runtime_of_view(self, view: str) -> Runtime | None:
        for runtime in self.runtimes:
            if view == f"broker-{self._serial(runtime)}":
                return runtime
        return None

    async def action_show_view(self, view: str) -> None:
        """Switch to a view: ``explorer`` (the one shown last), ``chat`` (Ctrl+T), or ``broker-N`` (a tab)."""
        if view == "chat":
            if self.current_mode != self._chat_mode():
                await self.switch_mode(self._chat_mode())
            return
        runtime = self._runtime_of_view(view)
        if runtime is None:
            runtime = self._last_explorer if self._index(self._last_explorer) is not None else self.runtime
        await self.show_broker(runtime)

    async def show_broker(self, runtime: Runtime) -> None:
        """Show the explorer of ``runtime``. From another broker's explorer, the topic selected there is selected
        here too when this broker has it: switching compares the same topic on both (dev and prod, the two
        sides of a bridge)."""
        mode = self._explorer_mode(runtime)
        if self.current_mode == mode:
            return
        topic = None
        with contextlib.suppress(ScreenStackError):
            if isinstance(self.screen, MainScreen):
                node = self.screen.query_one(TopicTreeView).highlighted
                topic = node.topic if node is not None else None
        await self.switch_mode(mode)
        self._last_explorer = runtime
        screen = self.screen
        if topic is not None and isinstance(screen, MainScreen):
            screen.query_one(TopicTreeView).select_topic(topic)

    async def action_next_broker(self, step: int) -> None:
        """The next (``step`` 1) or previous (-1) broker's explorer (``]`` and ``[``)."""
        if len(self.runtimes) < 2:
            return
        base = self._last_explorer if self._index(self._last_explorer) is not None else self.runtime
        with contextlib.suppress(ScreenStackError):
            if isinstance(self.screen, MainScreen):
                base = self.screen.runtime
        index = self._index(base) or 0
        await self.show_broker(self.runtimes[(index + step) % len(self.runtimes)])

    @property
    def current_view(self) -> str:
        return self.current_mode.partition("-")[0]

    @on(ViewTabs.ViewChosen, "#view-tabs")
    async def _view_chosen(self, event: ViewTabs.ViewChosen) -> None:
        await self.action_show_view(event.view)

    def _runtime_args(self, old: Runtime) -> dict[str, Any]:
        """What a new connection keeps of ``old``'s settings (the chat's, the decoders, the lasting history)."""
        return {
            "embed_broker": old.embed_broker, "chat_nick": old.chat_nick, "chat_rooms": old.chat_rooms,
            "chat_session_expiry": old.chat_session_expiry, "decoder_rules": tuple(old.decoders.rules),
            "history_budget": old.history_budget, "history_retention": old.history_retention,
            "discover": old.discover, "big_topics": old.big_topics, "watch_sys": old.watch_sys,
        }  # fmt: skip

    def open_beside(self, profile: Profile) -> None:
        """Open the broker of ``profile`` beside those open, in a tab of its own, and show it."""
        try:
            options = profile.to_client_options()
        except ValueError as exc:
            notify_text(self, f"cannot use profile {profile.name!r}: {exc}", severity="error", timeout=10)
            return
        options = replace(options, maximum_packet_size=self.runtime.options.maximum_packet_size, reconnect=True)
        subscriptions, changes = profile.guarded_subscriptions()
        hosting = any(runtime.embed_broker and runtime.is_local_default for runtime in self.runtimes)
        args = self._runtime_args(self.runtime)
        args["embed_broker"] = self.runtime.embed_broker and not hosting  # one embedded broker for all
        if profile.cloud:  # a cloud service closes the connection on a refused subscription: no $SYS watch there
            args["watch_sys"] = False
        runtime = Runtime(options, subscriptions, profile_name=profile.name, notices=tuple(changes), **args)
        self.add_broker(runtime)

    def add_broker(self, runtime: Runtime, *, show: bool = True, connect: bool = True) -> None:
        """Open ``runtime`` beside the brokers open: its own tab, status, history and publish target."""
        runtime.notice = self._notice
        self.runtimes.append(runtime)
        self._add_explorer_mode(runtime)
        self._share_budget()
        user = runtime.options.effective_username
        notify_text(self, f"opening {runtime.options.target.url}{f' as {user}' if user else ''} beside the others")
        if show:
            self.call_later(self.show_broker, runtime)
        if connect:
            self._start_broker(runtime)

    async def close_broker(self, runtime: Runtime) -> None:
        """Disconnect ``runtime`` and close its tab (never the last one). The chat, if it sat on it, moves to the
        first broker left."""
        index = self._index(runtime)
        if index is None or len(self.runtimes) < 2:
            return
        self.workers.cancel_group(self, self._group(runtime))
        del self.runtimes[index]
        mode = self._explorer_mode(runtime)
        if self.current_mode == mode:
            await self.show_broker(self.runtimes[min(index, len(self.runtimes) - 1)])
        if runtime is self.runtime:
            await self._move_chat(self.runtimes[0])
        await runtime.stop()
        await self.remove_mode(mode)
        del self._serials[id(runtime)]
        runtime.history_share = None
        self._share_budget()
        notify_text(self, f"closed {runtime.options.target.url}")

    async def chat_on(self, runtime: Runtime) -> None:
        """Move the chat to ``runtime``'s broker (the explorer of every broker stays open)."""
        if runtime is self.runtime or self._index(runtime) is None:
            return
        await self._move_chat(runtime)
        notify_text(self, f"the chat is on {self.broker_label(runtime)} now")
        if self.chat_wanted and runtime.client.connected:
            self.start_chat()

    async def _move_chat(self, runtime: Runtime) -> None:
        old, old_mode = self.runtime, self._chat_mode()
        await old.stop_chat()
        self.runtime = runtime
        self._chat_generation += 1
        self._add_chat_mode()
        if self.current_mode == old_mode:
            await self.switch_mode(self._chat_mode())
        await self.remove_mode(old_mode)

    def switch_profile(self, profile: Profile, runtime: Runtime | None = None) -> None:
        """Disconnect ``runtime`` (the chat's broker when not given) and connect again with ``profile``, on a fresh
        screen."""
        old = runtime or self.runtime
        try:
            options = profile.to_client_options()
        except ValueError as exc:
            notify_text(self, f"cannot use profile {profile.name!r}: {exc}", severity="error", timeout=10)
            return
        # the profile names the broker; the largest packet accepted stays the app's (settings, --max-packet-size)
        options = replace(options, maximum_packet_size=old.options.maximum_packet_size)
        subscriptions, changes = profile.guarded_subscriptions()
        # A cloud service that would close the connection for these: what was changed, said once connected.
        switch = self._switch(old, options, subscriptions, profile.name, tuple(changes), cloud=bool(profile.cloud))
        self.run_worker(switch, name="switch_profile", group=self._group(old), exclusive=True, exit_on_error=False)

    def reconnect_with_password(self, password: str, runtime: Runtime | None = None) -> None:
        """Connect again as before, with ``password`` (asked for when the broker refused a connection without)."""
        old = runtime or self.runtime
        switch = self._switch(old, replace(old.options, password=password), old.subscriptions, old.profile_name)
        self.run_worker(switch, name="reconnect_with_password", group=self._group(old), exclusive=True,
                        exit_on_error=False)  # fmt: skip

    async def _switch(
        self,
        old: Runtime,
        options: ClientOptions,
        subscriptions: tuple[tuple[str, int], ...],
        profile_name: str | None,
        notices: tuple[str, ...] = (),
        *,
        cloud: bool = False,
    ) -> None:
        """Disconnect ``old`` and connect with ``options`` in its place, on fresh screens (a mode's base screen
        cannot be replaced). ``cloud``: a cloud service, which closes the connection on a refused subscription (no
        $SYS watch there)."""
        index = self._index(old)
        if index is None:
            return
        await old.stop()
        args = self._runtime_args(old)
        if cloud:
            args["watch_sys"] = False
        new = Runtime(options, subscriptions, profile_name=profile_name, notices=notices, **args)
        new.notice = self._notice
        new.tree.history_budget = old.tree.history_budget
        self.runtimes[index] = new
        old_modes = [self._explorer_mode(old)]
        showing_old = self.current_mode == old_modes[0]
        self._add_explorer_mode(new)
        if old is self.runtime:
            self.runtime = new
            old_modes.append(self._chat_mode())
            self._chat_generation += 1
            self._add_chat_mode()
            if self.current_view == "chat":
                await self.switch_mode(self._chat_mode())
        if self._last_explorer is old:
            self._last_explorer = new
        if showing_old:
            await self.switch_mode(self._explorer_mode(new))
        for mode in old_modes:  # their screens belonged to the old connection
            await self.remove_mode(mode)
        del self._serials[id(old)]
        user = options.effective_username
        notify_text(self, f"connecting to {options.target.url}{f' as {user}' if user else ''}")
        self._start_broker(new)

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
        if isinstance(screen, MainScreen):
            self._last_explorer = screen.runtime
        dirty = screen.runtime.tree.consume_changes()
        now = time.time()
        self._ticks += 1
        slow = self._ticks % max(1, int(self.flush_hz // 2)) == 0
        if now - self._last_tick >= 1.0:
            self._last_tick = now
            for runtime in self.runtimes:
                runtime.tick(now)
            self._share_budget()
        with self.batch_update(), contextlib.suppress(NoMatches):  # NoMatches: the screen is being torn down
            screen.flush(dirty, slow)
            if slow or len(self.runtimes) > 1:
                self._sync_tabs(screen)
        # Collect the cycles made since the last flush, then set what survived aside (history entries, topic
        # nodes: long-lived), so that each young collection walks one flush's worth of objects. Under a 20,000
        # msg/s flood the young generations otherwise held tens of thousands of entries, and a collection of
        # them took 40-70 ms.
        gc.collect(1)
        gc.freeze()

    def _sync_tabs(self, screen: MainScreen | ChatScreen) -> None:
        """The tabs of the screen shown follow the brokers open and the colours of their connections."""
        tabs = screen.query_one(ViewTabs)
        entries, current = self.view_entries(), self.view_id(screen)
        if tabs.same_tabs(entries, current):
            tabs.relabel(entries)
        elif not self._retabbing:
            self._retabbing = True
            self.call_later(self._replace_tabs, screen, tabs, ViewTabs(current, entries))

    async def _replace_tabs(self, screen: Screen[None], old: ViewTabs, new: ViewTabs) -> None:
        try:
            await old.remove()
            await screen.mount(new, before=0)
        finally:
            self._retabbing = False

    def _share_budget(self) -> None:
        """Split the one history budget between the brokers open, by what each holds (about once a second)."""
        runtimes = self.runtimes
        total = self.history_total
        if len(runtimes) == 1:
            runtimes[0].history_share = None
            if runtimes[0].tree.history_budget != total:
                runtimes[0].tree.set_history_budget(total)
            return
        used = [runtime.tree.stats.history_bytes for runtime in runtimes]
        shares = share_budget(total, used, headroom(total, len(runtimes)))
        for runtime, share in zip(runtimes, shares, strict=True):
            runtime.history_share = (total, len(runtimes))
            runtime.tree.set_history_budget(share)

    def _quiet_gc(self) -> None:
        """Every ten minutes, when fewer than 100 messages a second arrive, free old-generation cycles."""
        if sum(runtime.rates.in_per_s for runtime in self.runtimes) < 100:
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
        for runtime in self.runtimes:
            peers = runtime.hosted_peers()
            if peers:
                self.push_screen(HostQuitDialog(runtime, peers), self._quit_answered)
                return
        await self._quit()

    async def _quit_answered(self, answer: str | None) -> None:
        if answer == "yes":
            await self._quit()

    async def _quit(self) -> None:
        try:
            await asyncio.gather(*(runtime.stop() for runtime in self.runtimes))
        finally:
            self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            yield from screen.system_commands()
