"""MainScreen: the topic tree on the left; message, history, publish, retained, packets and broker on the right.

The screen lays the explorer out, hands each widget what it shows on the app's timer (:meth:`MainScreen.flush`),
and turns what the widgets ask for (their messages) into calls on the runtime: the jobs themselves (publishing,
subscribing, recording, replaying, bulk retained publishing) are the runtime's, and the file formats are the
explorer's models.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, ProgressBar, Static, TabbedContent, TabPane

from mqttchat.client import PublishResult
from mqttchat.config import Profile
from mqttchat.explorer.progress import PublishProgress
from mqttchat.explorer.recording import RecordedMessage, RecordingError, load_recording
from mqttchat.explorer.retained import (
    BULK_RATE,
    RetainedMessage,
    bulk_duration,
    export_retained,
    import_retained,
    retained_messages,
)
from mqttchat.explorer.tree import parse_filter_text
from mqttchat.labels import plural
from mqttchat.protocol import MQTTError, Subscription
from mqttchat.shared_ingest import foreign_group
from mqttchat.ui.safe import network_text, notify_text
from mqttchat.ui.screens.dialogs import ConfirmDialog, EditValueDialog, PathDialog
from mqttchat.ui.widgets.broker_panel import BrokerPanel
from mqttchat.ui.widgets.chart_panel import PICKER_FIELDS, ChartPanel
from mqttchat.ui.widgets.explorer_tabs import ExplorerTabs
from mqttchat.ui.widgets.history_view import HistoryView
from mqttchat.ui.widgets.message_view import MessageView
from mqttchat.ui.widgets.packet_log import PacketLog
from mqttchat.ui.widgets.publish_pane import PublishDraft, PublishPane
from mqttchat.ui.widgets.record_panel import RecordPanel
from mqttchat.ui.widgets.retained_table import RetainedTable
from mqttchat.ui.widgets.status_bar import StatusBar
from mqttchat.ui.widgets.subscriptions_panel import SubscriptionsPanel
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from mqttchat.ui.widgets.view_tabs import ViewTabs

if TYPE_CHECKING:
    from textual import getters

    from mqttchat.explorer.history_store import StoredMessage
    from mqttchat.explorer.tree import TopicNode
    from mqttchat.runtime import Runtime
    from mqttchat.ui.app import MQTTChatApp
    from mqttchat.ui.screens.decode_as import DecodeChoice

#: The tree's filter syntax (``/regex/``, an MQTT wildcard filter, or a substring), shared with the recorder.
parse_filter = parse_filter_text


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("g", "jump", "Jump"),
        Binding("p", "show_tab('publish')", "Publish"),
        Binding("m", "show_tab('message')", "Message", show=False),
        Binding("h", "show_tab('history')", "History", show=False),
        Binding("t", "show_tab('chart')", "Chart", show=False),
        Binding("r", "show_tab('retained')", "Retained", show=False),
        Binding("u", "show_tab('subscriptions')", "Subscriptions", show=False),
        Binding("e", "show_tab('record')", "Record", show=False),
        Binding("k", "show_tab('packets')", "Packets", show=False),
        Binding("b", "show_tab('broker')", "Broker", show=False),
        Binding("escape", "focus_tree", "Tree", show=False),
        Binding("d", "decode_as", "Decode as", show=False),
        Binding("f", "search_history", "Find in history", show=False),
        Binding("c", "connections", "Connect"),
        Binding("o", "open_beside", "Open another broker", show=False),
        Binding("right_square_bracket", "app.next_broker(1)", "Next broker", show=False),
        Binding("left_square_bracket", "app.next_broker(-1)", "Previous broker", show=False),
        Binding("number_sign", "toggle_discovery", "All topics / discover", show=False),
        Binding("exclamation_mark", "hot_topics", "Hot topics", show=False),
        Binding("ctrl+t", "app.show_view('chat')", "Chat"),
    ]

    if TYPE_CHECKING:
        app = getters.app(MQTTChatApp)

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self._filter_text = ""
        self.ready = False
        #: The replay running (and the file it reads), and the bulk retained publish running, shown on flush.
        self._replay: tuple[PublishProgress, Path] | None = None
        self._replay_shown = -1
        self._retained_job: PublishProgress | None = None
        #: What the discovery's state and the tree's expansions were at the last flush (follow on change).
        self._discovery_version = -1
        self._expansion_version = -1
        self._discovering = False
        #: Whether the retained delivery being cut short was said already.
        self._retained_cut_said = False

    def compose(self) -> ComposeResult:
        yield ViewTabs(self.app.view_id(self), self.app.view_entries())
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Input(placeholder="/ filter: a/+/b, /regex/", id="tree-filter")
                yield Static("", id="tree-filter-error")
                yield Static("", id="tree-partial")
                yield TopicTreeView(self.runtime.tree, values=self.runtime.value_line, id="tree")
            with ExplorerTabs(id="tabs", initial="message"):
                with TabPane("Message", id="message"):
                    yield MessageView(self.runtime, id="message-view")
                with TabPane("History", id="history"):
                    yield HistoryView(self.runtime, id="history-view")
                with TabPane("Chart", id="chart"):
                    yield ChartPanel(id="chart-panel")
                with TabPane("Publish", id="publish"):
                    yield PublishPane(id="publish-pane")
                with TabPane("Retained", id="retained"), Vertical():
                    yield Input(placeholder="filter retained topics", id="retained-filter")
                    yield RetainedTable(self.runtime.tree, id="retained-table")
                    yield ProgressBar(id="retained-progress", show_eta=False)
                with TabPane("Subs", id="subscriptions"):
                    yield SubscriptionsPanel(id="subscriptions-panel")
                with TabPane("Record", id="record"):
                    yield RecordPanel(id="record-panel")
                with TabPane("Packets", id="packets"):
                    yield PacketLog(id="packet-log-panel")
                with TabPane("Broker", id="broker"), VerticalScroll(id="broker-scroll"):
                    yield BrokerPanel(id="broker-panel")
        yield StatusBar(id="status")
        yield Footer()

    def on_resize(self) -> None:
        # An 80-column terminal: the footer's keys closer together, so that c (Connect) and ^q (Quit) show.
        self.query_one(Footer).compact = self.size.width < 100

    def on_mount(self) -> None:
        self.query_one(TopicTreeView).focus()
        self.query_one("#retained-progress", ProgressBar).display = False
        self.ready = True

    def system_commands(self) -> Iterable[SystemCommand]:
        """The explorer's commands in the command palette."""
        tree = self.query_one(TopicTreeView)
        yield SystemCommand("Filter topics", "Focus the topic filter (/)", self.action_focus_filter)
        yield SystemCommand("Jump to topic", "Select a topic by name (g)", self.action_jump)
        yield SystemCommand("Publish a message", "Open the publish pane (p)", lambda: self.action_show_tab("publish"))
        yield SystemCommand(
            "Retained messages", "Browse, edit and delete retained messages", lambda: self.action_show_tab("retained")
        )
        yield SystemCommand(
            "Subscriptions",
            "Add or remove subscriptions with QoS and MQTT 5 options (u)",
            lambda: self.action_show_tab("subscriptions"),
        )
        yield SystemCommand(
            "Record and replay",
            "Record matching messages to JSONL, replay a recording (e)",
            lambda: self.action_show_tab("record"),
        )
        yield SystemCommand("Packet inspector", "Every packet in and out", lambda: self.action_show_tab("packets"))
        yield SystemCommand(
            "Broker capabilities", "What the broker said in CONNACK, and $SYS", lambda: self.action_show_tab("broker")
        )
        yield SystemCommand(
            "Open another broker", "Watch another broker beside this one, in a tab of its own (o)",
            self.action_open_beside,
        )  # fmt: skip
        app = self.app
        if len(app.runtimes) > 1:
            runtime = self.runtime
            yield SystemCommand(
                "Close this broker", "Disconnect this broker and close its tab",
                lambda: app.run_worker(app.close_broker(runtime), group="brokers", exit_on_error=False),
            )  # fmt: skip
            if runtime is not app.runtime:
                yield SystemCommand(
                    "Chat on this broker", "Move the chat to this broker (the explorers stay open)",
                    lambda: app.run_worker(app.chat_on(runtime), group="brokers", exit_on_error=False),
                )  # fmt: skip
        yield SystemCommand("Expand all topics", "Expand every node (+)", tree.action_expand_all)
        yield SystemCommand("Collapse all topics", "Collapse every node (-)", tree.action_collapse_all)
        yield SystemCommand("Sort topics", "Cycle name / count / recency (s)", tree.action_cycle_sort)
        yield SystemCommand("Hot topics", "The topics and subtrees with the most messages a second (!)",
                            self.action_hot_topics)  # fmt: skip
        if self.runtime.shared is None:
            yield SystemCommand(
                "Read a firehose over several connections",
                "A shared subscription in a group of this app's own",
                self.action_shared_ingest,
            )
        else:
            yield SystemCommand("Stop reading over several connections", self.runtime.shared.summary(),
                                self.stop_shared)  # fmt: skip
        if self.runtime.discovery.active:
            yield SystemCommand("Subscribe to all topics", "Subscribe to # again (#)", self.action_toggle_discovery)
        else:
            yield SystemCommand(
                "Discover topics level by level",
                "A broker too big for #: follow only the expanded subtrees (#)",
                self.action_toggle_discovery,
            )

    # ------------------------------------------------------------------------------------------ flush

    def flush(self, dirty: bool, slow: bool) -> None:
        """Bring the widgets up to date with the models (the app calls this about 15 times a second)."""
        tree_view = self.query_one(TopicTreeView)
        self._follow_expanded(tree_view)
        if self._filter_text and (slow or not dirty):
            self._apply_filter(self._filter_text, quiet=True)
        tree_view.update_from_model(dirty)
        node = tree_view.highlighted
        active = self.query_one(TabbedContent).active
        charts = self.runtime.charts
        if charts.series:
            charts.update(self.runtime.decoders)
        if active == "message":
            self.query_one(MessageView).show(node)
        elif active == "history":
            self.query_one(HistoryView).show(node)
        elif active == "chart":
            self._show_chart(node)
        elif active == "retained" and slow:
            self.query_one(RetainedTable).refresh_from_model()
        elif active == "packets":
            self.query_one(PacketLog).refresh_from(self.runtime.trace)
        elif active == "subscriptions":
            self.query_one(SubscriptionsPanel).refresh_from(self.runtime)
        elif active == "record":
            self._show_recording()
            self._show_replay()
        elif active == "broker" and slow:
            self.query_one(BrokerPanel).refresh_from(self.runtime)
        if slow and not self._retained_cut_said:
            compared = self.runtime.retained_comparison(time.monotonic())
            if compared is not None and compared[1]:
                self._retained_cut_said = True
                notify_text(self.app, compared[0][0].upper() + compared[0][1:] + " (b: Broker tab)",
                            severity="warning", timeout=15)  # fmt: skip
        if self._retained_job is not None:
            self.query_one("#retained-progress", ProgressBar).update(progress=self._retained_job.accepted)
        self.query_one(StatusBar).refresh_from(self.runtime)

    # ------------------------------------------------------------------------------------------ discovery

    def _follow_expanded(self, tree_view: TopicTreeView) -> None:
        """Discovering: follow the subtrees expanded on screen, and say that the view is partial."""
        discovery = self.runtime.discovery
        active = discovery.active
        if active and tree_view.expansion_version != self._expansion_version:
            self._expansion_version = tree_view.expansion_version
            discovery.follow(tree_view.shown_expanded())
        if discovery.version == self._discovery_version and active == self._discovering:
            return
        self._discovery_version = discovery.version
        if active != self._discovering:
            self._discovering = active
            tree_view.partial = active
            tree_view.refresh()
            if active:
                self._expansion_version = -1  # follow what is expanded now
                notify_text(self.app, f"Discovering topics level by level ({discovery.reason}): a subtree is followed "
                            "while it is expanded. Press # to subscribe to everything again.", severity="warning",
                            timeout=10)  # fmt: skip
        line = self.query_one("#tree-partial", Static)
        line.update(network_text(discovery.status()))
        line.set_class(active, "shown")

    def action_hot_topics(self) -> None:
        """The hottest topics and subtrees; the one chosen is selected in the tree."""
        from mqttchat.ui.screens.hot_topics import HotTopicsDialog

        def chosen(topic: str | None) -> None:
            if topic:
                self.query_one(TopicTreeView).select_topic(topic)

        self.app.push_screen(HotTopicsDialog(self.runtime), chosen)

    def action_toggle_discovery(self) -> None:
        """``#``: subscribe to everything, or go back to discovering level by level."""
        self.toggle_discovery()

    @work(group="discovery", exclusive=True, exit_on_error=False)
    async def toggle_discovery(self) -> None:
        discovery = self.runtime.discovery
        if not self.runtime.client.connected:
            notify_text(self.app, "not connected", severity="warning")
            return
        if discovery.active:
            await discovery.follow_everything()
            notify_text(self.app, "subscribed to # again: every topic is followed")
        else:
            try:
                await self.runtime.start_discovering(self.query_one(TopicTreeView).shown_expanded())
            except ValueError as exc:
                notify_text(self.app, str(exc), severity="warning")

    # ------------------------------------------------------------------------------------------ tree & filter

    @on(TopicTreeView.TopicHighlighted, "#tree")
    def _highlighted(self, event: TopicTreeView.TopicHighlighted) -> None:
        node = self.runtime.tree.get(event.topic)
        self.query_one(MessageView).show(node)
        if node is not None and node.messages:
            self.query_one(PublishPane).set_topic(node.topic)

    @on(Input.Changed, "#tree-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._apply_filter(event.value)

    def _apply_filter(self, text: str, quiet: bool = False) -> None:
        self._filter_text = text.strip()
        error = self.query_one("#tree-filter-error", Static)
        try:
            visible = self.runtime.visible_topics(parse_filter(text))
        except ValueError as exc:
            error.update(str(exc))
            error.add_class("shown")
            return
        error.update("")
        error.remove_class("shown")
        self.query_one(TopicTreeView).set_filter(visible)

    @on(Input.Submitted, "#tree-filter")
    def _filter_done(self) -> None:
        self.query_one(TopicTreeView).focus()

    @on(Input.Changed, "#retained-filter")
    def _retained_filter(self, event: Input.Changed) -> None:
        table = self.query_one(RetainedTable)
        table.filter = parse_filter(event.value)
        table.refresh_from_model()

    def action_focus_filter(self) -> None:
        self.query_one("#tree-filter", Input).focus()

    def action_focus_tree(self) -> None:
        self.query_one(TopicTreeView).focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "publish":
            self.query_one("#pub-topic", Input).focus()
        elif tab == "subscriptions":
            self.query_one(SubscriptionsPanel).refresh_from(self.runtime)
            self.query_one("#sub-filter", Input).focus()
        elif tab == "record":
            self.query_one("#rec-filter", Input).focus()
        elif tab == "chart":
            self._show_chart(self.query_one(TopicTreeView).highlighted)
            self.query_one("#chart-field", Input).focus()

    def action_connections(self) -> None:
        """The connection screen, on the connection in use (or the one that failed, with the reason)."""
        from mqttchat.ui.screens.connect import ConnectScreen, current_profile

        def chosen(profile: Profile | None) -> None:
            if profile is not None:
                self.app.switch_profile(profile, self.runtime)

        runtime = self.runtime
        failure = runtime.failure if not runtime.client.connected else None
        problem = str(failure.error) if failure is not None else None
        ask_password = failure is not None and failure.credentials
        screen = ConnectScreen(current=current_profile(runtime), problem=problem, ask_password=ask_password)
        self.app.push_screen(screen, chosen)

    def action_open_beside(self) -> None:
        """The connection screen, for another broker to open beside this one (a tab of its own)."""
        from mqttchat.ui.screens.connect import ConnectScreen

        def chosen(profile: Profile | None) -> None:
            if profile is not None:
                self.app.open_beside(profile)

        self.app.push_screen(ConnectScreen(beside=True), chosen)

    def action_jump(self) -> None:
        def go(topic: str | None) -> None:
            if topic and not self.query_one(TopicTreeView).select_topic(topic):
                notify_text(self.app, f"no topic {topic!r} has been seen", severity="warning")

        self.app.push_screen(PathDialog("Jump to topic", ""), go)

    def action_search_history(self) -> None:
        """Search the lasting history (of the selected subtree, to begin with); the chosen message's topic is
        selected in the tree."""
        from mqttchat.ui.screens.history_search import HistorySearchDialog

        runtime = self.runtime
        if runtime.history is None:
            why = runtime.history_problem or "it is off (history_store in settings.toml, or --no-history)"
            notify_text(self.app, f"no lasting history: {why}", severity="warning")
            return
        node = self.query_one(TopicTreeView).highlighted
        start = f"{node.topic}/#" if node is not None and node.children else node.topic if node is not None else ""

        def chosen(message: StoredMessage | None) -> None:
            if message is None:
                return
            when = time.strftime("%H:%M:%S", time.localtime(message.t))
            if self.query_one(TopicTreeView).select_topic(message.topic):
                notify_text(self.app, f"{message.topic} at {when}: {message.payload[:200].decode(errors='replace')}")
            else:
                notify_text(self.app, f"{message.topic} is not in the tree now (stored at {when})", severity="warning")

        self.app.push_screen(HistorySearchDialog(runtime.history_path, start), chosen)

    # ------------------------------------------------------------------------------------------ charts

    def _show_chart(self, node: TopicNode | None) -> None:
        panel = self.query_one(ChartPanel)
        entry = node.last if node is not None else None
        topic = node.topic if node is not None and entry is not None else None
        if topic != panel.topic:
            fields = list(self.runtime.decode(topic, entry).fields)[:PICKER_FIELDS] if topic and entry else []
            panel.show_topic(topic, fields)
        panel.redraw(self.runtime.charts, panel.clock())

    @on(ChartPanel.SeriesAdded)
    def _series_added(self, event: ChartPanel.SeriesAdded) -> None:
        panel = self.query_one(ChartPanel)
        node = self.runtime.tree.get(event.topic)
        if node is None or node.last is None:
            panel.show_error("that topic has no message yet")
            return
        latest = self.runtime.decode(event.topic, node.last)
        if latest.number(event.field) is None:
            fields = list(latest.fields)[:8]
            what = f"the field {event.field!r}" if event.field else "the payload itself"
            hint = f"; its numeric fields: {', '.join(fields)}" if fields else "; it has no numeric field"
            panel.show_error(f"{what} is not a number in the latest payload of {event.topic}{hint}")
            return
        history = list(node.history) if node.history else [node.last]
        try:
            self.runtime.charts.add(event.topic, event.field, history, self.runtime.decoders)
        except ValueError as exc:
            panel.show_error(str(exc))
            return
        panel.show_error(None)
        panel.redraw(self.runtime.charts, panel.clock(), force=True)

    @on(ChartPanel.SeriesRemoved)
    def _series_removed(self, event: ChartPanel.SeriesRemoved) -> None:
        self.runtime.charts.remove(event.index)
        self.query_one(ChartPanel).redraw(self.runtime.charts, self.query_one(ChartPanel).clock(), force=True)

    @on(ChartPanel.WindowCycled)
    def _window_cycled(self) -> None:
        self.runtime.charts.next_window()
        self.query_one(ChartPanel).redraw(self.runtime.charts, self.query_one(ChartPanel).clock(), force=True)

    @on(ChartPanel.PauseToggled)
    def _pause_toggled(self) -> None:
        charts = self.runtime.charts
        panel = self.query_one(ChartPanel)
        if charts.paused:
            charts.resume()
        else:
            charts.pause(panel.clock())
        panel.redraw(charts, panel.clock(), force=True)

    # ------------------------------------------------------------------------------------------ decoders

    def action_decode_as(self, topic: str | None = None) -> None:
        """Choose how the selected topic's payloads (or a filter's) are decoded."""
        from mqttchat.ui.screens.decode_as import DecodeAsDialog

        if topic is None:
            node = self.query_one(TopicTreeView).highlighted
            topic = node.topic if node is not None else None
        node = self.runtime.tree.get(topic) if topic is not None else None
        if node is None or node.last is None:
            self.notify("select a topic with a message to choose its decoder", severity="warning")
            return
        self.app.push_screen(DecodeAsDialog(node.topic, node.last, self.runtime.decoders), self._decoder_chosen)

    @on(MessageView.DecodeAsRequested)
    def _decode_as_requested(self, event: MessageView.DecodeAsRequested) -> None:
        self.action_decode_as(event.topic)

    def _decoder_chosen(self, choice: DecodeChoice | None) -> None:
        if choice is None:
            return
        try:
            said = self.runtime.choose_decoder(choice.rule, choice.topic_filter)
        except ValueError as exc:
            notify_text(self.app, str(exc), severity="warning", timeout=10)
        else:
            notify_text(self.app, said)
        self.query_one(TopicTreeView).refresh()
        self.query_one(MessageView).show(self.query_one(TopicTreeView).highlighted)

    @on(MessageView.RebirthRequested)
    def _rebirth(self, event: MessageView.RebirthRequested) -> None:
        from mqttchat.explorer.decoders.sparkplug import rebirth_request

        try:
            topic, payload = rebirth_request(event.group, event.edge_node)
        except ValueError as exc:
            notify_text(self.app, f"cannot ask for a rebirth: {exc}", severity="error")
            return
        self.send_command(topic, payload, f"asked {event.group}/{event.edge_node} for a rebirth (NCMD)")

    @on(MessageView.WriteRequested)
    def _write_metric(self, event: MessageView.WriteRequested) -> None:
        from mqttchat.explorer.decoders.sparkplug import write_metric
        from mqttchat.explorer.sparkplug_view import place
        from mqttchat.ui.screens.sparkplug_write import MetricWrite, WriteMetricDialog

        where = place(self.runtime.decoders.sparkplug, event.topic)
        if where is None or where.is_host:
            return
        target = f"{where.group}/{where.edge_node}" + (f"/{where.device_id}" if where.device_id else "")

        def chosen(write: MetricWrite | None) -> None:
            if write is None:
                return
            try:
                topic, payload = write_metric(where.group, where.edge_node, write.name, write.value, write.datatype,
                                              where.device_id, alias=where.alias_of(write.name))  # fmt: skip
            except ValueError as exc:
                notify_text(self.app, f"cannot write {write.name}: {exc}", severity="error")
                return
            kind = "DCMD" if where.device_id else "NCMD"
            self.send_command(topic, payload, f"wrote {write.name} = {write.value!r} to {target} ({kind})")

        self.app.push_screen(WriteMetricDialog(target, where.metric_names()), chosen)

    @work(group="sparkplug", exit_on_error=False)
    async def send_command(self, topic: str, payload: bytes, said: str) -> None:
        """Publish a Sparkplug command (QoS 0, not retained, as the specification wants) and say so."""
        try:
            await self.runtime.client.publish(topic, payload, 0, False)
        except (MQTTError, ValueError) as exc:  # not connected: a message, never a traceback
            notify_text(self.app, f"not sent: {exc}", severity="error")
            return
        notify_text(self.app, said)

    # ------------------------------------------------------------------------------------------ packets

    @on(PacketLog.PauseToggled, "#packet-log-panel")
    def _pause_trace(self, event: PacketLog.PauseToggled) -> None:
        self.runtime.trace.paused = event.paused

    # ------------------------------------------------------------------------------------------ publishing

    @on(PublishPane.PublishRequested, "#publish-pane")
    def _publish(self, event: PublishPane.PublishRequested) -> None:
        self.publish_draft(event.draft)

    @work(group="publish", exit_on_error=False)
    async def publish_draft(self, draft: PublishDraft) -> None:
        pane = self.query_one(PublishPane)
        started = time.perf_counter()
        try:
            result = await self.runtime.client.publish(draft.topic, draft.payload, draft.qos, draft.retain,
                                                       draft.properties)  # fmt: skip
        except (MQTTError, ValueError) as exc:  # not connected, a refusal: a message, never a traceback
            pane.show_outcome(f"not sent: {exc}", error=True)
            return
        pane.show_result(draft, result, (time.perf_counter() - started) * 1000)
        if result.ok and result.downgraded:
            self.notify(
                "The broker answered this QoS 2 message with PUBACK: it downgrades QoS 2, so the message was "
                "delivered at QoS 1 (at least once, not exactly once).",
                title="Delivered at QoS 1",
                severity="warning",
                timeout=10,
            )

    # ------------------------------------------------------------------------------------------ subscriptions

    @on(SubscriptionsPanel.SubscribeRequested, "#subscriptions-panel")
    def _subscribe(self, event: SubscriptionsPanel.SubscribeRequested) -> None:
        sub, ident = event.subscription, event.subscription_identifier
        group = foreign_group(sub.topic_filter)
        if group is None:
            self.change_subscription(sub.topic_filter, sub, ident)
            return

        def confirmed(answer: str | None) -> None:
            if answer:
                self.change_subscription(sub.topic_filter, sub, ident)

        text = network_text(
            f"Joining the shared group {group!r} makes this app one of its members: the broker then gives this app "
            "a share of the group's messages, which its other members (production consumers, maybe) no longer "
            'get. To read a firehose over several connections without that, use "Read a firehose over several '
            "connections\" (ctrl+p): its group is this app's own."
        )
        self.app.push_screen(ConfirmDialog("Join a shared group?", text, "Join"), confirmed)

    def action_shared_ingest(self) -> None:
        """Read a filter over several connections in a shared group of the app's own."""
        from mqttchat.ui.screens.shared_ingest import SharedIngestDialog, SharedIngestRequest

        def chosen(request: SharedIngestRequest | None) -> None:
            if request is not None:
                self.start_shared(request.topic_filter, request.connections)

        self.app.push_screen(SharedIngestDialog(), chosen)

    @work(group="shared", exclusive=True, exit_on_error=False)
    async def start_shared(self, topic_filter: str, connections: int) -> None:
        try:
            shared = await self.runtime.start_shared(topic_filter, connections)
        except (MQTTError, ValueError, OSError) as exc:
            notify_text(self.app, f"cannot read {topic_filter} over {connections} connections: {exc}",
                        severity="error", timeout=10)  # fmt: skip
            return
        notify_text(self.app, f"reading {topic_filter} over {connections} connections (group {shared.group})")

    @work(group="shared", exclusive=True, exit_on_error=False)
    async def stop_shared(self) -> None:
        shared = await self.runtime.stop_shared()
        if shared is not None:
            notify_text(self.app, f"stopped: {shared.summary()}")

    @on(SubscriptionsPanel.UnsubscribeRequested, "#subscriptions-panel")
    def _unsubscribe(self, event: SubscriptionsPanel.UnsubscribeRequested) -> None:
        self.change_subscription(event.topic_filter, None, None)

    @work(group="subscriptions", exit_on_error=False)
    async def change_subscription(self, topic_filter: str, sub: Subscription | None, ident: int | None) -> None:
        """Subscribe (``sub`` given) or unsubscribe, and say what the broker answered."""
        panel = self.query_one(SubscriptionsPanel)
        try:
            if sub is not None:
                code = await self.runtime.subscribe(sub, ident)
            else:
                code = await self.runtime.unsubscribe(topic_filter)
        except (MQTTError, ValueError) as exc:  # not connected, a protocol refusal: a message, never a traceback
            panel.show_error(f"{topic_filter}: {exc}")
            return
        finally:
            panel.refresh_from(self.runtime)
        if code.is_error:
            verb = "subscription" if sub is not None else "unsubscribe"
            panel.show_error(f"{topic_filter}: {verb} refused by the broker: {code.title}")
        elif sub is not None:
            granted = int(code)
            note = f" (asked QoS {sub.qos})" if granted < sub.qos else ""
            notify_text(self.app, f"subscribed to {topic_filter}: granted QoS {granted}{note}")
        else:
            notify_text(self.app, f"unsubscribed from {topic_filter}")

    # ------------------------------------------------------------------------------------------ record & replay

    def _show_recording(self) -> None:
        recorder = self.runtime.recorder
        if recorder is not None:
            error = recorder.error is not None
            self.query_one(RecordPanel).show_recording(recorder.active, recorder.summary(), error=error)

    def _show_replay(self) -> None:
        """How far the replay running got (at most once per message replayed)."""
        if self._replay is None:
            return
        progress, path = self._replay
        if progress.done != self._replay_shown:
            self._replay_shown = progress.done
            text = f"replaying {path}: {progress.done} of {progress.total}"
            self.query_one(RecordPanel).show_replay(True, progress.done, progress.total, text)

    @on(RecordPanel.RecordRequested, "#record-panel")
    def _record(self, event: RecordPanel.RecordRequested) -> None:
        panel = self.query_one(RecordPanel)
        try:
            recorder = self.runtime.start_recording(event.topic_filter, event.path)
        except (OSError, ValueError) as exc:
            panel.show_recording(False, str(exc), error=True)
            return
        panel.show_recording(True, recorder.summary())

    @on(RecordPanel.StopRecordRequested, "#record-panel")
    def _stop_record(self) -> None:
        recorder = self.runtime.stop_recording()
        if recorder is not None:
            text = recorder.summary()  # closed: "recorded ... to FILE: N messages"
            self.query_one(RecordPanel).show_recording(False, text, error=recorder.error is not None)
            notify_text(self.app, text)

    @on(RecordPanel.ReplayRequested, "#record-panel")
    def _replay_requested(self, event: RecordPanel.ReplayRequested) -> None:
        self.replay(Path(event.path).expanduser(), event.speed)

    @on(RecordPanel.StopReplayRequested, "#record-panel")
    def _stop_replay(self) -> None:
        self.workers.cancel_group(self, "replay")

    @work(group="replay", exclusive=True, exit_on_error=False)
    async def replay(self, path: Path, speed: float) -> None:
        """Read the recording at ``path`` and have the runtime publish it again at ``speed`` (0: as fast as
        allowed), showing how far it got."""
        panel = self.query_one(RecordPanel)
        try:
            records: list[RecordedMessage] = await asyncio.to_thread(load_recording, path)
        except (OSError, RecordingError) as exc:
            text = f"cannot read {path}: {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
            panel.show_replay(False, 0, 0, text, error=True)
            return
        progress = PublishProgress(len(records))
        total = progress.total
        self._replay, self._replay_shown = (progress, path), 0
        panel.show_replay(True, 0, total, f"replaying {total} message(s) from {path}")

        def refused(topic: str, result: PublishResult) -> None:
            notify_text(self.app, f"{topic}: refused ({result.reason_code.title})", severity="warning")

        try:
            await self.runtime.replay(records, speed, progress, refused)
        except asyncio.CancelledError:
            self._replay = None
            panel.show_replay(False, progress.done, total, f"stopped after {progress.done} of {total} message(s)")
            raise
        except (MQTTError, ValueError) as exc:  # not connected, a refusal: a message, never a traceback
            self._replay = None
            panel.show_replay(False, progress.done, total, f"stopped after {progress.done} of {total}: {exc}",
                              error=True)  # fmt: skip
            return
        self._replay = None
        panel.show_replay(False, progress.done, total, f"replayed {progress.done} message(s) from {path}")
        notify_text(self.app, f"replayed {progress.done} message(s) from {path}")

    # ------------------------------------------------------------------------------------------ retained

    @on(RetainedTable.ActionRequested, "#retained-table")
    def _retained_action(self, event: RetainedTable.ActionRequested) -> None:
        table = event.table
        topic = event.topic
        if event.action == "edit" and topic:
            node = self.runtime.tree.get(topic)
            value = node.retained_entry.payload.decode(errors="replace") if node and node.retained_entry else ""

            def edited(text: str | None) -> None:
                if text is not None:
                    self.send_retained([RetainedMessage(topic, text.encode())], "updated")

            self.app.push_screen(EditValueDialog(topic, value), edited)
        elif event.action == "delete" and topic:

            def confirmed(answer: str | None) -> None:
                if answer:
                    self.delete_retained([topic])

            question = network_text(f"Clear the retained message on {topic}?")
            dialog = ConfirmDialog("Delete retained message", question, "Delete")
            self.app.push_screen(dialog, confirmed)
        elif event.action == "delete_shown":
            topics = table.shown_topics
            if not topics:
                self.notify("no retained messages are shown", severity="warning")
                return

            def bulk(answer: str | None) -> None:
                if answer:
                    self.delete_retained(topics)

            text = (
                f"This would delete {plural(len(topics), 'retained message')} (dry run: nothing sent yet), at most "
                f"{BULK_RATE} a second ({bulk_duration(len(topics))})."
            )
            self.app.push_screen(ConfirmDialog("Delete retained messages", text, f"Delete {len(topics)}"), bulk)
        elif event.action == "export":
            shown = table.shown_topics

            def export(path: str | None) -> None:
                if path:
                    self.export_retained(Path(path), shown)

            self.app.push_screen(PathDialog("Export the shown retained messages to", "retained.json"), export)
        elif event.action == "import":

            def load(path: str | None) -> None:
                if path:
                    self.import_retained(Path(path))

            self.app.push_screen(PathDialog("Import retained messages from", "retained.json"), load)

    def delete_retained(self, topics: list[str]) -> None:
        self.send_retained([RetainedMessage(topic, b"") for topic in topics], "deleted")

    @work(group="retained", exclusive=True, exit_on_error=False)
    async def send_retained(self, messages: list[RetainedMessage], verb: str) -> None:
        """Have the runtime publish ``messages`` retained (at most BULK_RATE a second), with progress."""
        bar = self.query_one("#retained-progress", ProgressBar)
        bar.display = len(messages) > 1
        bar.update(total=len(messages), progress=0)
        progress = self._retained_job = PublishProgress(len(messages))

        def refused(topic: str, result: PublishResult) -> None:
            notify_text(self.app, f"{topic}: refused ({result.reason_code.title})", severity="error")

        try:
            await self.runtime.publish_retained(messages, progress, refused)
        except (MQTTError, ValueError) as exc:  # not connected, a refusal: a message, never a traceback
            notify_text(self.app, f"stopped after {progress.accepted} of {len(messages)}: {exc}", severity="error")
            return
        finally:
            self._retained_job = None
            bar.display = False
        notify_text(self.app, f"{verb} {progress.accepted} retained message(s)")

    def export_retained(self, path: Path, topics: list[str]) -> None:
        messages = retained_messages(self.runtime.tree, topics)
        try:
            export_retained(path, messages)
        except OSError as exc:
            notify_text(self.app, f"cannot write {path}: {exc.strerror}", severity="error")
            return
        notify_text(self.app, f"exported {len(messages)} retained message(s) to {path}")

    def import_retained(self, path: Path) -> None:
        try:
            messages = import_retained(path)
        except OSError as exc:
            notify_text(self.app, f"cannot read {path}: {exc.strerror}", severity="error")
            return
        except ValueError as exc:
            notify_text(self.app, f"{path} is not a retained-message export: {exc}", severity="error")
            return
        self.send_retained(messages, "imported")
