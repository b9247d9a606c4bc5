"""TopicTreeView: the live topic tree, drawn with the Line API so 100,000 topics cost only the visible rows.

| Key | Action |
| --- | --- |
| ↑ ↓ PgUp PgDn Home End | move |
| → / Enter | expand (Enter on an expanded node collapses it) |
| ← | collapse, or go to the parent |
| `*` | expand the whole subtree |
| `-` | collapse everything |
| `+` | expand everything (up to a limit) |
| `s` | cycle the sort: name, message count, recency, rate (messages a second here and below) |

In a partial view (``partial``: the explorer discovers a big broker level by level) the counts are lower bounds
(``≥12 topics``) and a topic without known children can be expanded too: expanding it follows it, which is how
its children are found.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mqttchat.explorer.payload import preview
from mqttchat.explorer.tree import SortOrder, TopicNode, TopicTree
from mqttchat.labels import age_label, plural
from mqttchat.untrusted import printable

EXPAND_ALL_LIMIT = 20_000
#: The fewest payload characters worth showing in a row (less: only the age is shown).
MIN_PREVIEW = 2
FLASH_SECONDS = 1.0


#: Seconds the row builder may run at a time before the event loop gets its turn back.
BUILD_SLICE = 0.01


def _raw_value(node: TopicNode, width: int) -> str:
    """The latest payload as it is (text, compact JSON, or hex)."""
    return preview(node.last.payload, width) if node.last is not None else ""


class TopicTreeView(ScrollView, can_focus=True):
    """The topic tree of a :class:`TopicTree` model, refreshed by the app's flush timer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("right", "expand", "Expand", show=False),
        Binding("enter", "toggle_node", "Expand/collapse", show=False),
        Binding("left", "collapse", "Collapse", show=False),
        Binding("asterisk", "expand_subtree", "Expand"),
        Binding("minus", "collapse_all", "Collapse all", show=False),
        Binding("plus", "expand_all", "Expand all", show=False),
        Binding("s", "cycle_sort", "Sort"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "topic-tree--cursor",
        "topic-tree--flash",
        "topic-tree--count",
        "topic-tree--retained",
        "topic-tree--preview",
        "topic-tree--age",
        "topic-tree--guide",
    }

    DEFAULT_CSS = """
    TopicTreeView {
        background: $surface;
    }
    TopicTreeView > .topic-tree--cursor { background: $accent 40%; }
    TopicTreeView:focus > .topic-tree--cursor { background: $accent; color: $text; }
    TopicTreeView > .topic-tree--flash { background: $warning 25%; }
    TopicTreeView > .topic-tree--count { color: $text-muted; }
    TopicTreeView > .topic-tree--retained { color: $success; text-style: bold; }
    TopicTreeView > .topic-tree--preview { color: $text-muted; }
    TopicTreeView > .topic-tree--age { color: $text-disabled; }
    TopicTreeView > .topic-tree--guide { color: $text-disabled; }
    """

    @dataclass
    class TopicHighlighted(Message):
        """The cursor moved to another topic."""

        tree_view: TopicTreeView
        topic: str

        @property
        def control(self) -> TopicTreeView:
            return self.tree_view

    order: reactive[SortOrder] = reactive(SortOrder.NAME)

    def __init__(
        self,
        tree: TopicTree,
        *,
        values: Callable[[TopicNode, int], str] | None = None,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self.model = tree
        #: The value column's text for a node in at most so many cells (its latest payload decoded); it may come
        #: from the network: it is shown through printable().
        self.values = values or _raw_value
        self.expanded: set[str] = set()
        self.rows: list[TopicNode] = []
        self.cursor = 0
        self.shown: set[TopicNode] | None = None  # None: no filter
        self._structure = -1
        self._highlighted: str | None = None
        self._builder: Iterator[None] | None = None
        self._continuing = False
        self._building: list[TopicNode] = []
        #: Clock for ages and flashes; tests replace it for deterministic snapshots.
        self.clock = time.time
        #: Row and component styles by component name (and row style), until the styles change.
        self._styles: dict[object, Style] = {}
        #: The view is partial (topics discovered level by level): counts are lower bounds, leaves expand.
        self.partial = False
        #: Bumped whenever ``expanded`` changes (the screen follows the expanded subtrees then).
        self.expansion_version = 0

    # ------------------------------------------------------------------------------------------ model → rows

    def _build(self) -> Iterator[None]:
        """Compute the visible rows into ``self._building``, yielding every few thousand rows."""
        rows: list[TopicNode] = []
        self._building = rows
        return self._walk(self.model.root, rows)

    def _walk(self, top: TopicNode, rows: list[TopicNode]) -> Iterator[None]:
        """Append the rows shown below ``top`` (not ``top`` itself) to ``rows``, yielding every few thousand.

        A depth-first walk with one iterator per open level. A level whose children have no children of their own
        (``branches``: the leaves, most of the rows of a big tree) is added in one ``extend``, without a step per
        row.
        """
        visible = self.shown
        order = self.order
        expanded = self.expanded
        filtering = visible is not None
        keep = visible.__contains__ if visible is not None else None
        sorted_children = TopicTree.sorted_children
        now = self.clock()
        append = rows.append
        extend = rows.extend
        stack: list[Iterator[TopicNode]] = []

        def open_level(parent: TopicNode) -> bool:
            """Add parent's shown children: at once when none of them has children, else as a level to walk.
            Whether a level was pushed."""
            children = sorted_children(parent, order, now)
            if keep is not None:
                children = list(filter(keep, children))
            if parent.branches:
                stack.append(iter(children))
                return True
            extend(children)
            return False

        open_level(top)
        next_yield = len(rows) + 2000
        while stack:
            for node in stack[-1]:
                append(node)
                if node.children and (filtering or node.topic in expanded) and open_level(node):
                    break
                if len(rows) >= next_yield:
                    next_yield = len(rows) + 2000
                    yield
            else:
                stack.pop()
            if len(rows) >= next_yield:
                next_yield = len(rows) + 2000
                yield

    def _advance(self, budget: float) -> bool:
        """Run the row builder for up to ``budget`` seconds; swap the rows in when done. True when finished."""
        builder = self._builder
        if builder is None:
            return True
        deadline = time.perf_counter() + budget
        for _ in builder:
            if time.perf_counter() >= deadline:
                if not self._continuing and self.is_mounted:
                    # Go on in a moment rather than at the next flush: the rows are ready sooner, and the event
                    # loop still gets its turn between slices.
                    self._continuing = True
                    self.set_timer(0.002, self._continue_build)
                return False
        self._builder = None
        highlighted = self.highlighted
        self.rows = self._building
        self._building = []
        if highlighted is not None:
            with contextlib.suppress(ValueError):
                self.cursor = self.rows.index(highlighted)
        self.cursor = max(0, min(self.cursor, len(self.rows) - 1))
        self.virtual_size = Size(self.size.width, len(self.rows))
        self.refresh()
        return True

    def _continue_build(self) -> None:
        self._continuing = False
        if self._builder is not None:
            self._advance(BUILD_SLICE)

    def rebuild(self, budget: float = 0.015) -> None:
        """Recompute the visible rows (after new topics, expansion, filtering or sorting).

        Small trees finish at once. A large one (100,000 expanded topics take 20-40 ms to walk) is built in slices
        of ``budget`` seconds on the following flushes, while the previous rows stay on screen: the event loop is
        never blocked for long.
        """
        self.expansion_version += 1
        self._builder = self._build()
        self._advance(budget)

    def rebuild_now(self) -> None:
        self.expansion_version += 1
        self._builder = self._build()
        self._advance(3600.0)

    def shown_expanded(self) -> set[str]:
        """The expanded topics whose rows are shown (every ancestor expanded too)."""
        expanded = self.expanded
        shown = set()
        for topic in expanded:
            head, sep, _ = topic.rpartition("/")
            while sep and head in expanded:
                head, sep, _ = head.rpartition("/")
            if not sep:
                shown.add(topic)
        return shown

    def update_from_model(self, changed: bool) -> None:
        """Called by the app's flush timer: ``changed`` says whether messages arrived since the last call.

        Rows are rebuilt when topics were added (or, sorting by count or recency, when counts moved), in time
        slices of a few milliseconds per flush. Otherwise only the visible lines are redrawn.
        """
        if self._builder is not None:
            self._advance(BUILD_SLICE)
        else:
            structure = self.model.structure_version
            if structure != self._structure or (changed and self.order is not SortOrder.NAME):
                self._structure = structure
                self._builder = self._build()
                self._advance(BUILD_SLICE)
        self.refresh()  # counts, ages and flashes move on
        self._post_highlight()

    def set_filter(self, visible: set[TopicNode] | None) -> None:
        self.shown = visible
        self.rebuild()
        self._post_highlight()

    def watch_order(self) -> None:
        if self.is_mounted:
            self.rebuild()

    @property
    def highlighted(self) -> TopicNode | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def _post_highlight(self) -> None:
        node = self.highlighted
        topic = node.topic if node else None
        if topic != self._highlighted:
            self._highlighted = topic
            if topic is not None:
                self.post_message(self.TopicHighlighted(self, topic))

    def select_topic(self, topic: str) -> bool:
        """Expand the path to ``topic`` and move the cursor to it.

        The rows of the ancestors it opens are spliced in after the outermost of them: the cost is that subtree's
        rows, never a walk of the whole tree (100,000 expanded rows took 40-100 ms, at once, on every jump, hot
        topic pick or broker tab switch).
        """
        node = self.model.get(topic)
        if node is None:
            return False
        opened: TopicNode | None = None  # the outermost ancestor expanded here
        parent = node.parent
        while parent is not None and parent.topic:
            if parent.topic not in self.expanded:
                self.expanded.add(parent.topic)
                opened = parent
            parent = parent.parent
        rebuilt = self._builder is not None
        if rebuilt:  # rows being made in slices (they may have passed the path already): made again, at once
            self.rebuild_now()
        elif opened is not None:
            self.expansion_version += 1
            if self.shown is None:  # (filtering, every shown node is open already: the rows stay as they are)
                self._open_rows(opened)
        try:
            self.cursor = self.rows.index(node)
        except ValueError:
            if rebuilt:
                return False
            self.rebuild_now()  # a topic newer than the rows: they are made again, all of them
            try:
                self.cursor = self.rows.index(node)
            except ValueError:
                return False  # filtered out
        self._scroll_to_cursor()
        self.refresh()
        self._post_highlight()
        return True

    def _open_rows(self, node: TopicNode) -> None:
        """Put the rows shown below ``node`` (just expanded) after its own row."""
        try:
            at = self.rows.index(node) + 1
        except ValueError:
            return  # not shown (an ancestor is collapsed): nothing to add
        below: list[TopicNode] = []
        for _ in self._walk(node, below):
            pass
        self.rows[at:at] = below
        if self.cursor >= at:
            self.cursor += len(below)
        self.virtual_size = Size(self.size.width, len(self.rows))

    # ------------------------------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= len(self.rows):
            return Strip.blank(width, self._row_style(""))
        node = self.rows[index]
        now = self.clock()
        if index == self.cursor:
            row_style = self._row_style("topic-tree--cursor")
        elif node.changed_at and now - node.changed_at < FLASH_SECONDS:
            row_style = self._row_style("topic-tree--flash")
        else:
            row_style = self._row_style("")
        segments = self._row_segments(node, now, row_style)
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, row_style)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()  # a theme, the focus (the cursor's colour) or an ancestor's background changed

    def _row_style(self, component: str) -> Style:
        """The style of a row: the widget's own, with a component's over it (the cursor, a flash); kept until the
        styles change (``rich_style`` walks every ancestor: it cost a fifth of drawing the tree, once a row)."""
        style = self._styles.get(component)
        if style is None:
            style = self.rich_style
            if component:
                style += self.get_component_rich_style(component)
            self._styles[component] = style
        return style

    def _fg(self, name: str, row_style: Style) -> Style:
        """A component's colours over the row's background (so the cursor and flashes show through)."""
        key = (name, row_style)
        style = self._styles.get(key)
        if style is None:
            component = self.get_component_rich_style(name, partial=True)
            style = row_style + Style(color=component.color, bold=component.bold, italic=component.italic)
            self._styles[key] = style
        return style

    def _row_segments(self, node: TopicNode, now: float, row: Style) -> list[Segment]:
        # Separators are visible characters rather than runs of spaces: SVG renderers (rsvg) drop the leading
        # spaces of a styled span, which would glue the columns together in screenshots.
        depth = node.depth - 1
        if node.children or (self.partial and node.topic in self.expanded):
            marker = "▼ " if (self.shown is not None or node.topic in self.expanded) else "▶ "
        else:
            marker = "• " if node.messages else "  "
        guide = self._fg("topic-tree--guide", row)
        # Topic levels and payloads came from the network: shown through printable(), never as they are.
        segments = [Segment("│ " * depth + marker, guide), Segment(printable(node.name or "∅") + " ", row)]
        if node.retained:
            segments.append(Segment("® ", self._fg("topic-tree--retained", row)))
        details = []
        at_least = "≥" if self.partial else ""  # discovering: what was seen, not what the broker has
        if node.children:
            details.append(at_least + plural(node.topics_below, "topic"))
            details.append(at_least + plural(node.subtree_messages, "msg"))
        else:
            details.append(plural(node.subtree_messages, "msg"))
        rate = node.rate(now)
        if rate:
            details.append(f"{rate:g}/s")
        segments.append(Segment(f"· {', '.join(details)} ", self._fg("topic-tree--count", row)))
        if node.last is not None:
            # The payload gets the room left, and the age sits at the right edge: a long payload or a narrow
            # tree cuts the payload, never the age.
            age = f"· {age_label(now - node.last.received_at)}"
            if node.last.stale:  # restored from the lasting history: no live message yet
                age = f"· stale {age_label(now - node.last.received_at)}"
            used = sum(segment.cell_length for segment in segments)
            room = self.size.width - used - cell_len(age)
            if room >= MIN_PREVIEW + 3:  # "= " + preview + " "
                shown = set_cell_size(f"= {printable(self.values(node, room - 3))}", room)
                segments.append(Segment(shown, self._fg("topic-tree--preview", row)))
            elif room > 0:
                segments.append(Segment(" " * room, row))
            segments.append(Segment(age, self._fg("topic-tree--age", row)))
        return segments

    # ------------------------------------------------------------------------------------------ actions

    def _scroll_to_cursor(self) -> None:
        height = max(1, self.size.height)
        top = self.scroll_offset.y
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)

    def _move(self, cursor: int) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(cursor, len(self.rows) - 1))
        self._scroll_to_cursor()
        self.refresh()
        self._post_highlight()

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor + delta)

    def action_cursor_to(self, position: int) -> None:
        self._move(position if position >= 0 else len(self.rows) - 1)

    def action_page(self, direction: int) -> None:
        self._move(self.cursor + direction * max(1, self.size.height - 1))

    def action_expand(self) -> None:
        node = self.highlighted
        if node is None or not (node.children or self.partial):
            return
        if node.topic in self.expanded:
            self._move(self.cursor + 1)
        else:
            self.expanded.add(node.topic)
            self.rebuild()

    def action_collapse(self) -> None:
        node = self.highlighted
        if node is None:
            return
        if node.topic in self.expanded:
            self.expanded.discard(node.topic)
            self.rebuild()
        elif node.parent is not None and node.parent.topic:
            self.select_topic(node.parent.topic)

    def action_toggle_node(self) -> None:
        node = self.highlighted
        if node is None or not (node.children or self.partial):
            return
        if node.topic in self.expanded:
            self.expanded.discard(node.topic)
        else:
            self.expanded.add(node.topic)
        self.rebuild()

    def action_expand_subtree(self) -> None:
        node = self.highlighted
        if node is None:
            return
        for i, below in enumerate(node.walk()):
            if i >= EXPAND_ALL_LIMIT:
                self.notify(f"expanded the first {EXPAND_ALL_LIMIT} nodes only", severity="warning")
                break
            if below.children:
                self.expanded.add(below.topic)
        self.rebuild()

    def action_expand_all(self) -> None:
        for i, node in enumerate(self.model.nodes.values()):
            if i >= EXPAND_ALL_LIMIT:
                self.notify(f"expanded the first {EXPAND_ALL_LIMIT} nodes only", severity="warning")
                break
            if node.children:
                self.expanded.add(node.topic)
        self.rebuild()

    def action_collapse_all(self) -> None:
        self.expanded.clear()
        self.rebuild()

    def action_cycle_sort(self) -> None:
        orders = list(SortOrder)
        self.order = orders[(orders.index(self.order) + 1) % len(orders)]
        self.notify(f"sorted by {self.order.value}", timeout=1.5)

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.rows):
            if index == self.cursor and event.chain >= 2:
                self.action_toggle_node()
            self._move(index)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
