"""The ovlinspect TUI: namespaces, their overlay mounts as a tree, and a details pane.

The worst mount is selected (and, when it is a problem, opened) on the first screen; ``n``/``N``
walk the problems.  Below 80x24 (or with ``z``) one pane fills the screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.events import DescendantFocus, Resize
from textual.notifications import SeverityLevel
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, Tree
from textual.worker import get_current_worker

from ovlinspect.model import Overlay, Scan, Status
from ovlinspect.report.textsafe import visible
from ovlinspect.tui import labels
from ovlinspect.tui.details import (
    DetailsPane,
    layer_details,
    namespace_details,
    overlay_details,
)
from ovlinspect.tui.export import overlay_json, replace_file, timestamp, unique_path, write_new
from ovlinspect.tui.footer import StableFooter
from ovlinspect.tui.keys import bindings
from ovlinspect.tui.messages import (
    MountWatchEnded,
    NamespacesChanged,
    NamespacesRescanned,
    ScanDone,
    ScanFailed,
    ScanStep,
)
from ovlinspect.tui.mount_tree import MountTree, NodeKey, NodeRef
from ovlinspect.tui.namespaces import NamespaceTable
from ovlinspect.tui.view import (
    MOUNT_COLUMNS,
    NS_COLUMNS,
    Filter,
    History,
    NamespaceView,
    Sort,
    Summary,
    apply_filter,
    count,
    find_pid,
    is_problem,
    ns_key,
    sort_views,
)

if TYPE_CHECKING:
    from textual.command import Provider

    from ovlinspect.tui.watch import MountWatcher

Scanner = Callable[[], Scan]


def _commands() -> type[Provider]:
    """The palette's provider, imported when the palette first opens (start-up time)."""
    from ovlinspect.tui.commands import OvlCommands

    return OvlCommands

VIEW_ACTIONS = frozenset({"quit", "help", "save_svg", "command_palette"})
"""The app's actions that stay live while another screen (files, changes, help) is shown."""
SMALL = (80, 24)
"""Below this many columns or rows, one pane fills the screen."""


def describe_error(error: BaseException) -> str:
    """A one-line, user-facing description of a failed scan (a ScanError is already one)."""
    from ovlinspect.engine.scan import ScanError

    if isinstance(error, ScanError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class OvlInspectApp(App[int]):
    """Browse the overlay mounts of every mount namespace, worst first."""

    CSS_PATH = "ovlinspect.tcss"
    TITLE = "ovlinspect"
    COMMANDS: ClassVar = {_commands}  # ours only: one list of keys, one of commands
    CURSOR_BLINK: ClassVar[bool] = True  # tests turn it off for stable snapshots
    BINDINGS: ClassVar[list[BindingType]] = bindings("main")

    def __init__(
        self,
        scanner: Scanner,
        *,
        focus_pids: list[int] | None = None,
        screenshot_dir: str = ".",
        watch: float | None = None,
        watch_mounts: bool = False,
        select: str | None = None,
        expand: bool = False,
    ) -> None:
        """``scanner`` runs in a thread; ``watch_mounts`` polls the scanned namespaces' mountinfo
        for changes (only for live scans); ``select`` (a mount point or mount id) is selected on
        the first screen instead of the worst mount, and ``expand`` opens it with its layers."""
        super().__init__()
        self.scanner = scanner
        self.focus_pids = list(focus_pids or [])
        self.screenshot_dir = screenshot_dir
        self.watch = watch
        self.select = select
        self.select_missing = False
        self.expand = expand
        self.scan: Scan | None = None
        self.scanned_at: float | None = None
        self.summary = Summary(Scan())
        self.scan_error: BaseException | None = None
        self.filter = Filter()
        self.history = History()
        self.ns_sort = Sort()
        self.mount_sort = Sort()
        self.views: list[NamespaceView] = []
        self.views_by_key: dict[str, NamespaceView] = {}
        self.selected_ns: str | None = None
        self.expanded: dict[str, set[NodeKey]] = {}
        self.zoomed = False
        self._pane = 0  # the pane the details follow (and the one shown alone when zoomed)
        self._tree_ns: str | None = None
        self._tree_overlays: list[Overlay] | None = None
        self._tree_marks: tuple[object, ...] = ()
        self._generation = 0
        self._scanning = False
        self._scan_pending = False
        self._watch_timer: Timer | None = None
        self._first_scan = True
        self._watcher: MountWatcher | None = None
        if watch_mounts:
            from ovlinspect.tui.watch import MountWatcher

            self._watcher = MountWatcher(follow_all=not self.focus_pids)
        self.pending: set[str] = set()  # listed, not analysed yet (first scan, in steps)
        self._touched = False  # a key was pressed while the first scan came in
        self._changed: dict[int, int] = {}  # ns inode -> a pid: to rescan
        self._gone: set[int] = set()
        self._rescanning = False
        self._make_widgets()

    # ---- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield self.ns_table
            yield self.mount_tree
        yield self.details_pane
        yield self.filter_box
        yield self.status_line
        yield StableFooter(compact=True)

    def _make_widgets(self) -> None:
        # Held here, not queried: a modal screen (help, palette) may be on top during updates.
        self.ns_table = NamespaceTable(id="namespaces")
        self.mount_tree = MountTree(id="mounts")
        self.details_pane = DetailsPane(id="details")
        self.filter_box = Input(placeholder="filter: words that must all match a path, pid, "
                                "comm, container or hazard code — enter keeps it, esc clears",
                                id="filter")
        self.filter_box.cursor_blink = self.CURSOR_BLINK
        self.status_line = Static("", id="status", markup=False)

    @property
    def panes(self) -> tuple[Widget, ...]:
        """The three panes in Tab order."""
        return (self.ns_table, self.mount_tree, self.details_pane)

    def one_pane(self, size: tuple[int, int] | None = None) -> bool:
        """True when one pane fills the screen: zoomed, or a terminal below 80x24."""
        width, height = size or self.size
        return self.zoomed or width < SMALL[0] or height < SMALL[1]

    def on_mount(self) -> None:
        self.ns_table.border_title = "Namespaces"
        self.mount_tree.border_title = "Overlay mounts"
        self.details_pane.border_title = "Details"
        self.filter_box.display = False
        self.mount_tree.loading = True
        self.ns_table.show_sort(self.ns_sort)
        self._apply_layout()
        self._update_status()
        self.request_scan()
        if self._watcher is not None:
            self._watch_mount_tables()

    def on_resize(self, event: Resize) -> None:
        self._apply_layout(tuple(event.size))  # self.size is not the new size yet

    def _apply_layout(self, size: tuple[int, int] | None = None) -> None:
        """Show every pane, or only the current one (full size) in the one-pane layout.  Only
        what changes is touched: each change costs a layout of the whole screen."""
        single = self.one_pane(size)
        if self.screen.has_class("one-pane") != single:
            self.screen.set_class(single, "one-pane")
        for i, pane in enumerate(self.panes):
            shown = not single or i == self._pane
            if pane.display != shown:
                pane.display = shown
            subtitle = f"{i + 1}/3 · tab: next pane" if single else ""
            if pane.border_subtitle != subtitle:
                pane.border_subtitle = subtitle
        top = self.query_one("#top")
        if top.display != (not single or self._pane < 2):
            top.display = not single or self._pane < 2

    def _show_pane(self, index: int) -> None:
        self._pane = index % len(self.panes)
        self._apply_layout()
        self.screen.set_focus(self.panes[self._pane])

    def on_unmount(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    async def on_event(self, event: events.Event) -> None:
        """Handle the main screen's keys in the order they were typed.

        Textual hands a key to the focused widget's queue and runs an app binding only when the
        key comes back up; a burst (``/quota`` over SSH, ``esc /``) then runs out of order, and
        keys typed after ``/`` reach a pane before the filter has the focus.  Here each key runs
        as it arrives: the focused pane's binding, else the app's; in the filter, text is
        inserted, enter keeps it and esc clears it.  Only what no binding takes goes the usual
        way.
        """
        if isinstance(event, events.Key) and not event.is_forwarded:
            self.app_focus = True
            self._touched = self._touched or bool(self.pending)
            for key in _split_alt(event):
                if not await self._key_in_order(key):
                    await super().on_event(key)
            return
        await super().on_event(event)

    async def _key_in_order(self, event: events.Key) -> bool:
        """Run ``event`` now; False when it must go the usual way (to the focused widget)."""
        if await self._check_bindings(event.key, priority=True):
            return True
        box = self.filter_box
        if self.focused is box:
            if event.key == "enter":
                self._filter_submitted()
            elif event.key == "escape":
                self.action_clear_filter()
            elif event.is_printable and event.character:
                box.insert_text_at_cursor(event.character)
            else:
                return await self._check_bindings(event.key)  # the input's editing keys
            return True
        if isinstance(self.focused, Input):
            return False
        return await self._check_bindings(event.key)

    # ---- scanning -------------------------------------------------------------------------

    def request_scan(self) -> None:
        """Scan now, or right after the scan under way (scans never overlap)."""
        if self._scanning:
            self._scan_pending = True
            return
        if self._watch_timer is not None:
            self._watch_timer.stop()
            self._watch_timer = None
        self._scanning = True
        self._scan_pending = False
        self._generation += 1
        self._update_status()
        self._scan_worker(self._generation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def _scan_worker(self, generation: int) -> None:
        """Scan in a thread.  The first live scan comes in steps (every namespace listed at
        once, then analysed one by one, the selected one first), so nothing waits for it."""
        worker = get_current_worker()
        steps = getattr(self.scanner, "steps", None)
        try:
            if steps is not None and self.scan is None:
                from ovlinspect.engine.progressive import Finished

                result = None
                for step in steps(self._wanted_first):
                    if worker.is_cancelled:
                        return
                    if isinstance(step, Finished):
                        result = step.scan
                    else:
                        self.post_message(ScanStep(generation, step))
                assert result is not None
            else:
                result = self.scanner()
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(ScanFailed(generation, exc))
            return
        if not worker.is_cancelled:
            self.post_message(ScanDone(generation, result))

    def _wanted_first(self) -> int | None:
        """The namespace to analyse next (called from the scan thread): the selected one."""
        key = self.selected_ns
        if key is not None and key in self.pending and key.startswith("mnt:"):
            return int(key[4:])
        return None

    def on_scan_step(self, message: ScanStep) -> None:
        """Show what a progressive first scan has so far."""
        if message.generation != self._generation:
            return
        from ovlinspect.engine.progressive import Listed

        step = message.step
        if isinstance(step, Listed):
            if self.scan is not None:
                return
            self.scan = step.scan
            self.scan.source = "live"
            self.summary = Summary(self.scan)
            self.pending = {ns_key(ns) for ns in self.scan.namespaces}
            self.mount_tree.loading = False
            self._refresh_views()
            if self.focused is None:
                self.ns_table.focus()
            return
        if self.scan is None:
            return
        fresh = {ns_key(ns): ns for ns in step.namespaces}
        gone = {f"mnt:{n}" for n in step.vanished if n is not None}
        self.scan.namespaces = [fresh.get(k, ns) for ns in self.scan.namespaces
                                if (k := ns_key(ns)) not in gone]
        for ns in step.namespaces:
            self.summary.add(ns)
        self.pending -= fresh.keys() | gone
        if self.selected_ns in fresh:
            self._tree_overlays = None  # the selected namespace has just been analysed
        self._refresh_views()

    def on_scan_done(self, message: ScanDone) -> None:
        if message.generation != self._generation:
            return
        self.mount_tree.loading = False
        self.pending = set()
        if self._first_scan:
            self._first_scan = False
            self.scan = message.scan
            self.scanned_at = time.time()
            self.history.update(message.scan, self.scanned_at)
            self.summary = Summary(message.scan)
            self._focus_initial()
            if self._watcher is not None:
                self._watcher.set_pids(ns.root_pid if ns.root_pid is not None else min(ns.pids)
                                       for ns in message.scan.namespaces
                                       if ns.root_pid or ns.pids)
        else:
            self._show_scan(message.scan)
        self._scan_finished()

    def _say_if_gone(self, key: tuple[str, int] | None) -> None:
        """Tell the user when the mount they were looking at went away."""
        if key is None:
            return
        view = self.views_by_key.get(key[0])
        if view is None:
            return
        since = view.gone_since if view.gone_since is not None else view.mount_gone.get(key[1])
        if since is not None:
            self.say(f"Mount #{key[1]} is gone (since {labels.clock(since)}): the last scan "
                     "no longer finds it; it stays here, dimmed, for 10 minutes",
                     severity="warning")

    def on_scan_failed(self, message: ScanFailed) -> None:
        if message.generation != self._generation:
            return
        self.scan_error = message.error
        self.mount_tree.loading = False
        text = describe_error(message.error)
        self.say(f"Scan failed: {text}", severity="error")
        if self.scan is None:
            self.details_pane.show(labels.safe(f"Scan failed: {text}", "bold red"))
        self._scan_finished()

    def _scan_finished(self) -> None:
        self._scanning = False
        self._update_status()
        if self._scan_pending:
            self.request_scan()
            return
        if self.watch:
            self._watch_timer = self.set_timer(self.watch, self.request_scan)
        self._start_rescan()

    @work(thread=True, exclusive=True, exit_on_error=False, group="mountwatch")
    def _watch_mount_tables(self) -> None:
        watcher = self._watcher
        assert watcher is not None
        worker = get_current_worker()
        try:
            watcher.follow(lambda changes: self.post_message(NamespacesChanged(changes)),
                           lambda: worker.is_cancelled)
        except Exception:  # last_error says why, and the app is told below
            pass
        finally:
            watcher.close()
            error = None if worker.is_cancelled else watcher.last_error
            self.post_message(MountWatchEnded(None if error is None else str(error)))

    def on_mount_watch_ended(self, message: MountWatchEnded) -> None:
        """Mount events no longer come: say so (r and --watch still rescan)."""
        self._watcher = None
        if message.error is not None:
            self.say(f"Mount watching stopped: {message.error}; r rescans", severity="error")

    def on_namespaces_changed(self, message: NamespacesChanged) -> None:
        """Rescan only the namespaces that changed (a burst collects while one rescan runs)."""
        for change in message.changes:
            if change.kind == "gone":
                self._gone.add(change.ns)
                self._changed.pop(change.ns, None)
            else:
                self._changed[change.ns] = change.pid
                self._gone.discard(change.ns)
        self._start_rescan()

    def _start_rescan(self) -> None:
        if self._rescanning or self._scanning or self.scan is None:
            return  # the running scan's end starts it
        if not (self._changed or self._gone):
            return
        changed, gone = self._changed, self._gone
        self._changed, self._gone = {}, set()
        self._rescanning = True
        self._update_status()
        self._rescan_worker(changed, gone, self._generation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="nsrescan")
    def _rescan_worker(self, changed: dict[int, int], gone: set[int], generation: int) -> None:
        from ovlinspect.engine.rescan import Rescanned, rescan_namespaces

        worker = get_current_worker()
        try:
            part = rescan_namespaces(changed, gone)
        except Exception as exc:  # a rescan that fails leaves the shown scan as it is
            part = Rescanned(errors=[f"rescan failed: {type(exc).__name__}: {exc}"])
        if not worker.is_cancelled:
            self.post_message(NamespacesRescanned(part, generation))

    def on_namespaces_rescanned(self, message: NamespacesRescanned) -> None:
        """Merge into the scan held now (not the one the rescan started from)."""
        from ovlinspect.engine.rescan import merge

        self._rescanning = False
        # A full scan started since this rescan began is newer: it wins (the rescan's result
        # would put older namespaces back over it).
        if self.scan is not None and message.generation == self._generation:
            self._show_scan(merge(self.scan, message.part).scan)
        self._start_rescan()
        self._update_status()

    def _show_scan(self, scan: Scan) -> None:
        """Take in a new scan (whole, or merged from a rescan) and show it."""
        before = self._selected_mount_key()
        self.scan = scan
        self.scanned_at = time.time()
        self.history.update(scan, self.scanned_at)
        self.summary = Summary(scan)
        self.scan_error = None
        self._refresh_views()
        self._say_if_gone(before)
        if self._watcher is not None:
            self._watcher.set_pids(ns.root_pid if ns.root_pid is not None else min(ns.pids)
                                   for ns in scan.namespaces if ns.root_pid or ns.pids)

    # ---- showing --------------------------------------------------------------------------

    def _focus_initial(self) -> None:
        """First screen: ``--select``'s mount, else the worst mount of ``--pid``'s namespace, else
        the worst mount of all; it is opened when it is a problem (or with ``--expand``)."""
        assert self.scan is not None
        self._refresh_views()
        if self._touched and not self.select:
            return  # the user is already somewhere: the first screen does not move them
        target = self._find_selected() if self.select else None
        self.select_missing = target is None and bool(self.select)
        if self.select_missing:
            self.say(f"No mount {self.select} in this scan", severity="warning")
        if target is None:
            target = self._worst_in(self._focus_namespace())
        if target is None:
            self.ns_table.focus()
            return
        key, overlay = target
        self.jump_to(key, overlay.mount_id, expand=self.expand or is_problem(overlay),
                     layers=self.expand)

    def _focus_namespace(self) -> str | None:
        if self.scan is None or not self.focus_pids:
            return None
        for pid in self.focus_pids:
            ns = find_pid(self.scan, pid)
            if ns is not None:
                return ns_key(ns)
        pids = ", ".join(str(p) for p in self.focus_pids)
        self.say(f"No namespace of pid {pids} in this scan", severity="warning")
        return None

    def _worst_in(self, key: str | None) -> tuple[str, Overlay] | None:
        """The first live mount in display order (worst first) of namespace ``key``, or of all."""
        for view in self.views:
            if (key is not None and view.key != key) or view.gone_since is not None:
                continue
            for overlay in view.overlays:
                if overlay.mount_id not in view.mount_gone:
                    return view.key, overlay
        return None

    def _find_selected(self) -> tuple[str, Overlay] | None:
        """The mount named by ``--select``: a mount id, else a mount point."""
        wanted = (self.select or "").strip()
        for view in self.views:
            for overlay in view.overlays:
                if (wanted.isdigit() and overlay.mount_id == int(wanted)) or \
                        overlay.mount_point == wanted.rstrip("/") or overlay.mount_point == wanted:
                    return view.key, overlay
        return None

    def _refresh_views(self) -> None:
        """Apply the filter and the sort to the scan and update every pane, keeping cursor and
        expansion."""
        if self.scan is None:
            return
        self.views = apply_filter(self.scan, self.filter, self.summary, self.history,
                                  self.pending)
        # While a first scan comes in, rows keep their place (each step only updates cells);
        # worst first once it is all in.
        sort_views(self.views, Sort("pid") if self.pending else self.ns_sort, self.mount_sort)
        self.views_by_key = {v.key: v for v in self.views}
        if self.selected_ns not in self.views_by_key:
            self.selected_ns = self.views[0].key if self.views else None
        self.ns_table.show(self.views, self.selected_ns)
        total = len(self.scan.namespaces)
        live = sum(1 for v in self.views if v.gone_since is None)
        title = Text(f"Namespaces {live}/{total}")
        if live != len(self.views):
            title.append(f" +{len(self.views) - live} gone", style="dim")
        self.ns_table.border_title = title
        self._show_tree()
        self._update_details(keep_scroll=True)
        self._update_status()

    def _show_tree(self) -> None:
        tree = self.mount_tree
        view = self.views_by_key.get(self.selected_ns or "")
        if view is None:
            tree.clear()
            tree.root.add_leaf(Text("(no namespace matches)", style="dim"))
            self._tree_ns, self._tree_overlays = None, None
            tree.border_title = "Overlay mounts"
            return
        lead = labels.lead_process(view.ns)
        live = view.live_overlays
        title = Text(f"Overlay mounts {live}/{len(view.ns.overlays)}")
        if live != len(view.overlays):
            title.append(f" +{len(view.overlays) - live} gone", style="dim")
        if lead is not None:
            title.append(f" — pid {lead.pid} ")
            title.append_text(labels.process_label(lead))
        if view.gone_since is not None:
            title.append(f" — gone since {labels.clock(view.gone_since)}", style="bold")
        if view.pending:
            tree.clear()
            tree.root.add_leaf(Text("(analysing this namespace…)", style="dim"))
            self._tree_ns, self._tree_overlays = None, None
            tree.border_title = title
            return
        if self.mount_sort != Sort():
            title.append(f" — by {self.mount_sort.column}")
        tree.border_title = title
        marks = (view.gone_since, tuple(view.mount_gone.items()), tuple(view.mount_was.items()))
        same_ns = view.key == self._tree_ns
        if same_ns and view.overlays == self._tree_overlays and marks == self._tree_marks:
            return  # nothing changed: keep the tree, its cursor and what is expanded
        cursor = None
        if same_ns:
            node = tree.cursor_node
            cursor = node.data.key if node is not None and node.data is not None else None
        tree.show_namespace(view.ns, view.overlays, view.key, self.summary.overlay,
                            self.expanded.get(view.key, set()), cursor,
                            gone=view.mount_gone, was=view.mount_was)
        self._tree_ns, self._tree_overlays, self._tree_marks = view.key, list(view.overlays), marks

    def _update_details(self, keep_scroll: bool = False) -> None:
        """Show the facts of what the current pane points at (also while the filter is typed:
        the details never show what the filter hides).  Redrawn only when that changed."""
        view = self.views_by_key.get(self.selected_ns or "")
        if self._pane == 1:
            node = self.mount_tree.cursor_node
            if node is not None and node.data is not None:
                ref = node.data
                source = (ref.ns, ref.overlay, ref.layer, ref.gone_since, self.summary)
                if not self.details_pane.shows(source):
                    self.details_pane.show(node_details(ref, self.summary),
                                           keep_scroll=keep_scroll, source=source)
                return
        if self._pane == 2:
            return
        if view is not None:
            source = (view.ns, view.gone_since, self.summary)
            if self.details_pane.shows(source):
                return
            renderable = namespace_details(view.ns, self.scan, self.summary)
            if view.gone_since is not None:
                renderable = _gone_note(view.gone_since, renderable, "namespace")
            self.details_pane.show(renderable, keep_scroll=keep_scroll, source=source)
        elif self.scan is not None:
            self.details_pane.show(Text("No namespace matches the filter.", style="dim"),
                                   source=(None,))

    def _update_status(self) -> None:
        status = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.scan is None:
            status.append("scanning…" if self._scanning else "no scan", style="bold")
        else:
            if self.filter.problems_only:
                status.append("problems only │ ", style="bold")
            if self.filter.terms:
                status.append("filter: ", style="bold")
                labels.put(status, self.filter.query.strip())
                status.append(" │ ")
            c = count(self.scan, self.views, self.summary)
            status.append(f"{c.shown_namespaces}/{c.namespaces} ns · "
                          f"{c.shown_mounts}/{c.mounts} mounts  ")
            if c.gone_namespaces or c.gone_mounts:
                status.append(f"⌀ gone {c.gone_namespaces} ns, {c.gone_mounts} mounts  ",
                              style="dim")
            if self.pending:
                status.append(f"⋯ analysing {len(self.pending)} ns  ", style="bold")
            for state in Status:
                if c.statuses[state] or state in (Status.ERROR, Status.OK):
                    status.append_text(labels.status_badge(state, pad=False))
                    status.append(f" {c.statuses[state]}  ")
            if self.scanned_at is not None and self.scan.source == "live":
                status.append(f"│ scanned {labels.clock(self.scanned_at)} ")
            if self.scan.errors:
                status.append(f" │ {len(self.scan.errors)} scan errors", style="bold red")
            if self.scan.privileges:
                status.append(f" │ {len(self.scan.privileges)} privileges missing",
                              style="yellow")
            if self.scan.source != "live":
                status.append(" │ source: ")
                labels.put(status, self.scan.source)
            if self._scanning or self._rescanning:
                status.append(" │ rescanning…", style="bold")
        if self.scan_error is not None:
            status.append(" │ last scan failed", style="bold red")
        if self.watch:
            status.append(f" │ every {self.watch:g}s")
        self.status_line.update(status)

    # ---- events ---------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#namespaces")
    def _namespace_highlighted(self) -> None:
        table = self.ns_table
        if table.restoring:
            return
        key = table.current_key
        if key is not None and key != self.selected_ns:
            self.selected_ns = key
            self._show_tree()
            self._update_status()
        if self._pane == 0:
            self._update_details()

    @on(DataTable.RowSelected, "#namespaces")
    def _namespace_selected(self) -> None:
        self._show_pane(1)

    @on(DataTable.HeaderSelected, "#namespaces")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = NS_COLUMNS[event.column_index]
        same = self.ns_sort.column == column
        self._sort_namespaces(Sort(column, reverse=same and not self.ns_sort.reverse))

    @on(Tree.NodeHighlighted, "#mounts")
    def _node_highlighted(self) -> None:
        if self._pane == 1:
            self._update_details()

    @on(Tree.NodeExpanded, "#mounts")
    def _node_expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        ref = event.node.data
        if ref is not None and ref.key:
            self.expanded.setdefault(ref.key[0], set()).add(ref.key)

    @on(Tree.NodeCollapsed, "#mounts")
    def _node_collapsed(self, event: Tree.NodeCollapsed[NodeRef]) -> None:
        ref = event.node.data
        if ref is not None and ref.key:
            self.expanded.get(ref.key[0], set()).discard(ref.key)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if event.widget in self.panes:
            index = self.panes.index(event.widget)
            if index != self._pane:
                self._pane = index
                self._apply_layout()
            self._update_details()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        value = self.filter_box.value  # not event.value: a late message must not undo an esc
        if value != self.filter.query:
            self.filter = replace(self.filter, query=value)
            self._refresh_views()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.filter_box.display = False
        self._show_pane(1 if self.mount_tree.root.children else 0)

    # ---- actions --------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Open the filter input.  The focus moves at once (not after a refresh), so what is
        typed in the same burst as ``/`` lands in the filter, not on the app's keys."""
        box = self.filter_box
        box.display = True
        self.screen.set_focus(box)

    def action_clear_filter(self) -> None:
        """Clear and close the filter (what is expanded stays expanded)."""
        box = self.filter_box
        was_open = box.display
        box.display = False
        if self.filter.query or box.value:  # the value may be ahead of its Changed message
            with box.prevent(Input.Changed):
                box.value = ""
            self.filter = replace(self.filter, query="")
            self._refresh_views()
        if was_open:
            self._show_pane(self._pane)

    def action_toggle_problems(self) -> None:
        """Show only problems (error, warn, unproven), or everything."""
        self.filter = replace(self.filter, problems_only=not self.filter.problems_only)
        self._refresh_views()
        self.say("Showing only problems (error, warn, unproven)" if self.filter.problems_only
                 else "Showing all mounts")

    def _problems(self) -> list[tuple[str, Overlay]]:
        return [(view.key, o) for view in self.views if view.gone_since is None
                for o in view.overlays if is_problem(o) and o.mount_id not in view.mount_gone]

    def _step_problem(self, by: int) -> None:
        problems = self._problems()
        if not problems:
            self.say("No problems: every mount shown is ok or only has information")
            return
        here = self._selected_mount_key()
        keys = [(k, o.mount_id) for k, o in problems]
        start = keys.index(here) if here in keys else (-1 if by > 0 else 0)
        i = (start + by) % len(keys)
        key, overlay = problems[i]
        self.jump_to(key, overlay.mount_id)
        self.say(f"Problem {i + 1} of {len(keys)}")

    def action_next_problem(self) -> None:
        """The next mount in error, warn or unproven (wraps around)."""
        self._step_problem(1)

    def action_previous_problem(self) -> None:
        """The previous problem."""
        self._step_problem(-1)

    def _selected_mount_key(self) -> tuple[str, int] | None:
        node = self.mount_tree.cursor_node
        if node is not None and node.data is not None and node.data.overlay is not None:
            return node.data.key[0], node.data.overlay.mount_id
        return None

    def _sort_namespaces(self, order: Sort) -> None:
        self.ns_sort = order
        self.ns_table.show_sort(order)
        self._refresh_views()
        self.say(f"Namespaces sorted by {order.column}")

    def action_sort_by(self, by: int) -> None:
        """The focused list sorted by its previous (-1) or next (1) column."""
        if self._pane == 1:
            self.mount_sort = self.mount_sort.step(MOUNT_COLUMNS, by)
            self._refresh_views()
            self.say(f"Mounts sorted by {self.mount_sort.column}")
        else:
            self._sort_namespaces(self.ns_sort.step(NS_COLUMNS, by))

    def action_zoom(self) -> None:
        """The focused pane alone, full screen (toggle)."""
        self.zoomed = not self.zoomed
        self._apply_layout()
        self.screen.set_focus(self.panes[self._pane])

    def action_next_pane(self) -> None:
        """Tab: the next pane (shown alone in the one-pane layout); from the filter, keeps it
        (as enter does) and goes back to the panes."""
        if self.focused is self.filter_box:
            self._filter_submitted()
            return
        self._show_pane(self._pane + 1)

    def action_previous_pane(self) -> None:
        """Shift+Tab: the previous pane."""
        if self.focused is self.filter_box:
            self._filter_submitted()
            return
        self._show_pane(self._pane - 1)

    def action_rescan(self) -> None:
        """Scan again (in a thread)."""
        self.request_scan()

    def action_help(self) -> None:
        """Keys and the hazard catalogue."""
        from ovlinspect.tui.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()  # F1 again closes it
        else:
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Leave with status 0."""
        self.exit(0)

    def action_save_svg(self) -> None:
        """Save an SVG of the screen into the screenshot directory."""
        try:
            path = unique_path(self.screenshot_dir, f"ovlinspect-{timestamp()}", ".svg")
            write_new(path, self.export_screenshot())
        except OSError as exc:
            self.say(f"Cannot save the screenshot: {exc}", severity="error")
            return
        self.say(f"Saved {path}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only a few keys act while another screen (files, changes, help) is on top."""
        if len(self.screen_stack) > 1:
            return action in VIEW_ACTIONS
        return True

    def live_target(self, what: str) -> tuple[int, Overlay] | None:
        """The selected mount and a pid of its namespace, or None (after saying why)."""
        if self.scan is None:
            self.say("Wait for the scan to finish", severity="warning")
            return None
        if self.scan.source != "live":
            self.say(f"The {what} view reads the layers through a live process: this is a saved "
                     f"scan ({self.scan.source}); run ovlinspect on the host (--pid PID)",
                     severity="warning")
            return None
        overlay = self.selected_overlay()
        if overlay is None:
            self.say("Select a mount in the tree first", severity="warning")
            return None
        view = self.views_by_key.get(self.selected_ns or "")
        if view is not None and (view.gone_since is not None
                                 or overlay.mount_id in view.mount_gone):
            self.say(f"Mount #{overlay.mount_id} is gone: there is nothing live to read",
                     severity="warning")
            return None
        ns = view.ns if view is not None else None
        pid = None
        if ns is not None:
            lead = labels.lead_process(ns)
            pid = ns.root_pid if ns.root_pid is not None else (lead.pid if lead else None)
        if pid is None:
            self.say(f"The {what} view needs a live process in the mount's namespace, and this "
                     "namespace has none", severity="warning")
            return None
        return pid, overlay

    def action_files(self) -> None:
        """The merged tree of the selected mount, with the layer serving each entry."""
        target = self.live_target("files")
        if target is not None:
            pid, overlay = target
            from ovlinspect.tui.files import FilesScreen

            self.push_screen(FilesScreen(pid, overlay.mount_id, overlay.mount_point))

    def action_changes(self) -> None:
        """The selected mount's changes since its image (A/C/M/D/R)."""
        target = self.live_target("changes")
        if target is not None:
            pid, overlay = target
            from ovlinspect.tui.changes import ChangesScreen

            self.push_screen(ChangesScreen(pid, overlay.mount_id, overlay.mount_point))

    def selected_overlay(self) -> Overlay | None:
        """The mount under the tree cursor (or the only one shown)."""
        node = self.mount_tree.cursor_node
        if node is not None and node.data is not None and node.data.overlay is not None:
            return node.data.overlay
        view = self.views_by_key.get(self.selected_ns or "")
        if view is not None and len(view.overlays) == 1:
            return view.overlays[0]
        return None

    def action_write_json(self) -> None:
        """Write the selected mount's JSON into the screenshot directory: one file per mount,
        replaced (atomically) on the next press."""
        overlay = self.selected_overlay()
        if overlay is None:
            self.say("Select a mount in the tree first", severity="warning")
            return
        import os

        path = os.path.join(self.screenshot_dir, f"ovlinspect-mount-{overlay.mount_id}.json")
        try:
            replaced = replace_file(path, overlay_json(overlay) + "\n")
        except OSError as exc:
            self.say(f"Cannot write the JSON: {exc}", severity="error")
            return
        self.say(f"{'Rewrote' if replaced else 'Wrote'} {os.path.abspath(path)}")

    def _copy(self, text: str, what: str, hint: str = "") -> None:
        self.copy_to_clipboard(text)
        self.say(f"Sent {what} to the clipboard with OSC 52 ({len(text)} characters); it "
                 f"arrives only if the terminal allows OSC 52{hint}")

    def action_copy_json(self) -> None:
        """Copy the selected mount's JSON to the clipboard (OSC 52)."""
        overlay = self.selected_overlay()
        if overlay is None:
            self.say("Select a mount in the tree first", severity="warning")
            return
        self._copy(overlay_json(overlay), f"the JSON of mount #{overlay.mount_id}",
                   " (w writes it to a file)")

    def action_copy_path(self) -> None:
        """Copy the selected path alone: a layer's real path (else its declared path), or the
        mount point."""
        node = self.mount_tree.cursor_node if self._pane == 1 else None
        ref = node.data if node is not None else None
        path = None
        if ref is not None and ref.layer is not None:
            path = ref.layer.real_path or ref.layer.path or ref.layer.declared
        elif ref is not None and ref.overlay is not None:
            path = ref.overlay.mount_point
        if path is None:
            self.say("Select a mount or a layer in the mounts pane first", severity="warning")
            return
        self._copy(path, visible(path))

    def jump_to(self, key: str, mount_id: int | None = None, *, expand: bool = False,
                layers: bool = False) -> None:
        """Select the namespace ``key`` (clearing the filter if it hides it), then the mount;
        ``expand`` opens the mount, ``layers`` also each of its layers."""
        if self.scan is None:
            return
        if key not in self.views_by_key or (
            mount_id is not None
            and all(o.mount_id != mount_id for o in self.views_by_key[key].overlays)
        ):
            self.filter = Filter()
            box = self.filter_box
            box.display = False
            with box.prevent(Input.Changed):
                box.value = ""
        self.selected_ns = key
        if mount_id is not None and expand:
            wanted = self.expanded.setdefault(key, set())
            wanted.add((key, str(mount_id)))
            if layers:
                overlay = next((o for o in self.views_by_key.get(key, NamespaceView(
                    self.scan.namespaces[0], [])).overlays if o.mount_id == mount_id), None)
                for layer in overlay.layers if overlay is not None else []:
                    wanted.add((key, str(mount_id), layer.label))
            self._tree_overlays = None  # rebuild with the new expansion
        self._refresh_views()
        if mount_id is None:
            self._show_pane(0)
            return
        self.mount_tree.select_key((key, str(mount_id)))
        self._show_pane(1)

    def say(self, message: str, *, severity: SeverityLevel = "information") -> None:
        """Notify with untrusted text: control characters made visible (and a literal backslash
        doubled, since a notification has no styles to tell them apart), markup off.

        (``markup=False`` rather than ``rich.markup.escape``: Textual's markup would still eat a
        backslash before ``[``, and paths may hold one.)
        """
        self.notify(visible(message, keep_backslash=False), severity=severity, markup=False)


_ALT_CHARS = {"slash": "/", "question_mark": "?", "less_than_sign": "<",
              "greater_than_sign": ">", "space": " "}


def _split_alt(event: events.Key) -> list[events.Key]:
    """``alt+/`` is what a terminal's ``esc /`` typed in one burst reads as: an escape, then
    the key.  (The app binds no alt key.)"""
    if not event.key.startswith("alt+"):
        return [event]
    name = event.key[4:]
    char = name if len(name) == 1 else _ALT_CHARS.get(name)
    if char is None:
        return [event]
    out = [events.Key("escape", None), events.Key(name, char)]
    for key in out:
        key.set_sender(event._sender)  # type: ignore[arg-type]
    return out


def _gone_note(since: float, body: RenderableType, what: str) -> RenderableType:
    note = Text(f"⌀ gone since {labels.clock(since)}: the last scan no longer finds this "
                f"{what}; below is what an earlier scan saw.\n", style="bold")
    return Group(note, body)


def node_details(ref: NodeRef, summary: Summary | None = None) -> RenderableType:
    """The details of a tree node: its layer, else its mount, else its namespace."""
    if ref.overlay is not None and ref.layer is not None:
        return layer_details(ref.overlay, ref.layer)
    if ref.overlay is not None and ref.gone_since is not None:
        return _gone_note(ref.gone_since, overlay_details(ref.overlay), "mount")
    if ref.overlay is not None:
        return overlay_details(ref.overlay)
    return namespace_details(ref.ns, summary=summary)

