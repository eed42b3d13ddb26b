"""The ovlinspect TUI: namespaces, their overlay mounts as a tree, and a details pane."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.events import DescendantFocus
from textual.notifications import SeverityLevel
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static, Tree
from textual.worker import get_current_worker

from ovlinspect.model import Overlay, Scan, Status
from ovlinspect.report.textsafe import visible
from ovlinspect.tui import labels
from ovlinspect.tui.changes import ChangesScreen
from ovlinspect.tui.commands import OvlCommands
from ovlinspect.tui.details import (
    DetailsPane,
    layer_details,
    namespace_details,
    overlay_details,
)
from ovlinspect.tui.export import overlay_json, timestamp, unique_path, write_new
from ovlinspect.tui.files import FilesScreen
from ovlinspect.tui.help import HelpScreen
from ovlinspect.tui.messages import MountTableChanged, ScanDone, ScanFailed
from ovlinspect.tui.mount_tree import MountTree, NodeRef
from ovlinspect.tui.namespaces import NamespaceTable
from ovlinspect.tui.view import (
    Filter,
    NamespaceView,
    Summary,
    apply_filter,
    count,
    find_pid,
    ns_key,
)
from ovlinspect.tui.watch import MountWatcher

Scanner = Callable[[], Scan]
DEBOUNCE = 0.5
VIEW_ACTIONS = frozenset({"quit", "help", "save_svg", "command_palette"})
"""The app's actions that stay live while the files or changes view is shown."""


def describe_error(error: BaseException) -> str:
    """A one-line, user-facing description of a failed scan (a ScanError is already one)."""
    from ovlinspect.engine.scan import ScanError

    if isinstance(error, ScanError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class OvlInspectApp(App[int]):
    """Browse the overlay mounts of every mount namespace, hazards first."""

    CSS_PATH = "ovlinspect.tcss"
    TITLE = "ovlinspect"
    COMMANDS: ClassVar = App.COMMANDS | {OvlCommands}
    CURSOR_BLINK: ClassVar[bool] = True  # tests turn it off for stable snapshots
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("h", "toggle_hazards", "Hazards"),
        Binding("r", "rescan", "Rescan"),
        Binding("s", "save_svg", "SVG"),
        Binding("j", "write_json", "JSON"),
        Binding("y", "copy_json", "Copy"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("f", "files", "Files"),  # after help and quit: an 80-column footer keeps those
        Binding("c", "changes", "Changes"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        scanner: Scanner,
        *,
        focus_pids: list[int] | None = None,
        screenshot_dir: str = ".",
        watch: float | None = None,
        watch_mounts: bool = False,
    ) -> None:
        """``scanner`` runs in a thread; ``watch_mounts`` polls the scanned namespaces' mountinfo
        for changes (only for live scans)."""
        super().__init__()
        self.scanner = scanner
        self.focus_pids = list(focus_pids or [])
        self.screenshot_dir = screenshot_dir
        self.watch = watch
        self.scan: Scan | None = None
        self.summary = Summary(Scan())
        self.scan_error: BaseException | None = None
        self.filter = Filter()
        self.views: list[NamespaceView] = []
        self.views_by_key: dict[str, NamespaceView] = {}
        self.selected_ns: str | None = None
        self._tree_ns: str | None = None
        self._tree_overlays: list[Overlay] | None = None
        self._generation = 0
        self._scanning = False
        self._scan_pending = False
        self._watch_timer: Timer | None = None
        self._debounce: Timer | None = None
        self._first_scan = True
        self._watcher = MountWatcher() if watch_mounts else None
        self._make_widgets()

    # ---- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield self.ns_table
            yield self.mount_tree
        yield self.details_pane
        yield self.filter_box
        yield self.status_line
        yield Footer(compact=True)

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

    def on_mount(self) -> None:
        self.ns_table.border_title = "Namespaces"
        self.mount_tree.border_title = "Overlay mounts"
        self.details_pane.border_title = "Details"
        self.filter_box.display = False
        self.mount_tree.loading = True
        self._update_status()
        self.request_scan()
        if self._watcher is not None:
            self._watch_mount_tables()

    def on_unmount(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

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
        worker = get_current_worker()
        try:
            result = self.scanner()
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(ScanFailed(generation, exc))
            return
        if not worker.is_cancelled:
            self.post_message(ScanDone(generation, result))

    def on_scan_done(self, message: ScanDone) -> None:
        if message.generation != self._generation:
            return
        self.scan = message.scan
        self.summary = Summary(message.scan)
        self.scan_error = None
        self.mount_tree.loading = False
        if self._first_scan:
            self._first_scan = False
            self._focus_initial()
        else:
            self._refresh_views()
        if self._watcher is not None:
            self._watcher.set_pids(ns.root_pid for ns in message.scan.namespaces
                                   if ns.root_pid is not None)
        self._scan_finished()

    def on_scan_failed(self, message: ScanFailed) -> None:
        if message.generation != self._generation:
            return
        self.scan_error = message.error
        self.mount_tree.loading = False
        text = describe_error(message.error)
        self.say(f"Scan failed: {text}", severity="error")
        if self.scan is None:
            self.details_pane.show(Text(f"Scan failed: {visible(text)}", style="bold red"))
        self._scan_finished()

    def _scan_finished(self) -> None:
        self._scanning = False
        self._update_status()
        if self._scan_pending:
            self.request_scan()
        elif self.watch:
            self._watch_timer = self.set_timer(self.watch, self.request_scan)

    @work(thread=True, exclusive=True, exit_on_error=False, group="mountwatch")
    def _watch_mount_tables(self) -> None:
        assert self._watcher is not None
        worker = get_current_worker()
        try:
            self._watcher.run(lambda pids: self.post_message(MountTableChanged(pids)),
                              lambda: worker.is_cancelled)
        finally:
            self._watcher.close()

    def on_mount_table_changed(self, message: MountTableChanged) -> None:
        """Batch bursts of mount events into one rescan."""
        if self._debounce is None:
            self._debounce = self.set_timer(DEBOUNCE, self._debounced_rescan)

    def _debounced_rescan(self) -> None:
        self._debounce = None
        self.request_scan()

    # ---- showing --------------------------------------------------------------------------

    def _focus_initial(self) -> None:
        """First paint: select the namespace of ``--pid`` (focus its mounts) or the first row."""
        assert self.scan is not None
        target = None
        for pid in self.focus_pids:
            ns = find_pid(self.scan, pid)
            if ns is not None:
                target = ns_key(ns)
                break
        self.selected_ns = target
        self._refresh_views()
        if target is not None:
            self.mount_tree.focus()
            self._update_details()
        else:
            self.ns_table.focus()
            if self.focus_pids:
                pids = ", ".join(str(p) for p in self.focus_pids)
                self.say(f"No namespace of pid {pids} in this scan", severity="warning")

    def _refresh_views(self) -> None:
        """Apply the filter to the scan and update every pane, keeping cursor and expansion."""
        if self.scan is None:
            return
        self.views = apply_filter(self.scan, self.filter, self.summary)
        self.views_by_key = {v.key: v for v in self.views}
        if self.selected_ns not in self.views_by_key:
            self.selected_ns = self.views[0].key if self.views else None
        self.ns_table.show(self.views, self.selected_ns)
        total = len(self.scan.namespaces)
        self.ns_table.border_title = Text(f"Namespaces {len(self.views)}/{total}")
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
        title = Text(f"Overlay mounts {len(view.overlays)}/{len(view.ns.overlays)}")
        if lead is not None:
            title.append(f" — pid {lead.pid} ")
            title.append_text(labels.process_label(lead))
        tree.border_title = title
        same_ns = view.key == self._tree_ns
        if same_ns and view.overlays == self._tree_overlays:
            return  # nothing changed: keep the tree, its cursor and what is expanded
        expanded: set[tuple[str, ...]] = set()
        cursor = None
        if same_ns:
            expanded = tree.expanded_keys()
            node = tree.cursor_node
            cursor = node.data.key if node is not None and node.data is not None else None
        tree.show_namespace(view.ns, view.overlays, view.key, self.summary.overlay, expanded,
                            cursor)
        self._tree_ns, self._tree_overlays = view.key, list(view.overlays)

    def _update_details(self, keep_scroll: bool = False) -> None:
        """Show the facts of what the focused pane points at."""
        focused = self.focused
        renderable: RenderableType | None = None
        if isinstance(focused, MountTree):
            node = focused.cursor_node
            if node is not None and node.data is not None:
                renderable = node_details(node.data, self.summary)
        elif isinstance(focused, NamespaceTable) or focused is None:
            view = self.views_by_key.get(self.selected_ns or "")
            if view is not None:
                renderable = namespace_details(view.ns, self.scan, self.summary)
            elif self.scan is not None:
                renderable = Text("No namespace matches the filter.", style="dim")
        if renderable is not None:
            self.details_pane.show(renderable, keep_scroll=keep_scroll)

    def _update_status(self) -> None:
        status = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.scan is None:
            status.append("scanning…" if self._scanning else "no scan", style="bold")
        else:
            c = count(self.scan, self.views, self.summary)
            status.append(f"{c.shown_namespaces}/{c.namespaces} ns · "
                          f"{c.shown_mounts}/{c.mounts} mounts  ")
            for state in Status:
                if c.statuses[state] or state in (Status.ERROR, Status.OK):
                    status.append_text(labels.status_badge(state, pad=False))
                    status.append(f" {c.statuses[state]}  ")
            if self.filter.terms:
                status.append("  │ filter: ", style="bold")
                status.append(visible(self.filter.query.strip()))
            if self.filter.hazards_only:
                status.append("  │ hazards only", style="bold")
            if self.scan.errors:
                status.append(f"  │ {len(self.scan.errors)} scan errors", style="bold red")
            if self.scan.privileges:
                status.append(f"  │ {len(self.scan.privileges)} privileges missing",
                              style="yellow")
            if self.scan.source != "live":
                status.append("  │ source: ")
                status.append(visible(self.scan.source))
            if self._scanning:
                status.append("  │ rescanning…", style="bold")
        if self.scan_error is not None:
            status.append("  │ last scan failed", style="bold red")
        if self.watch:
            status.append(f"  │ every {self.watch:g}s")
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
        if self.focused is table:
            self._update_details()

    @on(DataTable.RowSelected, "#namespaces")
    def _namespace_selected(self) -> None:
        self.mount_tree.focus()

    @on(Tree.NodeHighlighted, "#mounts")
    def _node_highlighted(self) -> None:
        if self.focused is self.mount_tree:
            self._update_details()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, MountTree | NamespaceTable):
            self._update_details()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter = replace(self.filter, query=event.value)
        self._refresh_views()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.filter_box.display = False
        if self.mount_tree.root.children:
            self.mount_tree.focus()
        else:
            self.ns_table.focus()

    # ---- actions --------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Open the filter input."""
        box = self.filter_box
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear and close the filter."""
        box = self.filter_box
        was_open = box.display
        box.display = False
        if was_open:
            self.ns_table.focus()
        if self.filter.query:
            with box.prevent(Input.Changed):
                box.value = ""
            self.filter = replace(self.filter, query="")
            self._refresh_views()

    def action_toggle_hazards(self) -> None:
        """Show only mounts with hazards, or everything."""
        self.filter = replace(self.filter, hazards_only=not self.filter.hazards_only)
        self._refresh_views()
        self.say("Showing only mounts with hazards" if self.filter.hazards_only
                 else "Showing all mounts")

    def action_rescan(self) -> None:
        """Scan again (in a thread)."""
        self.request_scan()

    def action_help(self) -> None:
        """Keys and the hazard catalogue."""
        if not isinstance(self.screen, HelpScreen):
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
        """The main screen's keys do nothing while a files or changes view is open (also
        under the help screen)."""
        if any(isinstance(s, FilesScreen | ChangesScreen) for s in self.screen_stack):
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
            self.push_screen(FilesScreen(pid, overlay.mount_id, overlay.mount_point))

    def action_changes(self) -> None:
        """The selected mount's changes since its image (A/C/M/D/R)."""
        target = self.live_target("changes")
        if target is not None:
            pid, overlay = target
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
        """Write the selected mount's JSON next to the screenshots."""
        overlay = self.selected_overlay()
        if overlay is None:
            self.say("Select a mount in the tree first", severity="warning")
            return
        try:
            path = unique_path(self.screenshot_dir, f"ovlinspect-mount-{overlay.mount_id}",
                               ".json")
            write_new(path, overlay_json(overlay) + "\n")
        except OSError as exc:
            self.say(f"Cannot write the JSON: {exc}", severity="error")
            return
        self.say(f"Wrote {path}")

    def action_copy_json(self) -> None:
        """Copy the selected mount's JSON to the clipboard (OSC 52)."""
        overlay = self.selected_overlay()
        if overlay is None:
            self.say("Select a mount in the tree first", severity="warning")
            return
        text = overlay_json(overlay)
        self.copy_to_clipboard(text)
        self.say(f"Copied the JSON of mount #{overlay.mount_id} ({len(text)} characters)")

    def jump_to(self, key: str, mount_id: int | None = None) -> None:
        """Select the namespace ``key`` (clearing the filter if it hides it), then the mount."""
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
        self._refresh_views()
        if mount_id is None:
            self.ns_table.focus()
            return
        self.mount_tree.select_key((key, str(mount_id)))
        self.mount_tree.focus()

    def say(self, message: str, *, severity: SeverityLevel = "information") -> None:
        """Notify with untrusted text: control characters made visible, markup off.

        (``markup=False`` rather than ``rich.markup.escape``: Textual's markup would still eat a
        backslash before ``[``, and paths may hold one.)
        """
        self.notify(visible(message), severity=severity, markup=False)


def node_details(ref: NodeRef, summary: Summary | None = None) -> RenderableType:
    """The details of a tree node: its layer, else its mount, else its namespace."""
    if ref.overlay is not None and ref.layer is not None:
        return layer_details(ref.overlay, ref.layer)
    if ref.overlay is not None:
        return overlay_details(ref.overlay)
    return namespace_details(ref.ns, summary=summary)

