"""The ovlinspect TUI: namespaces, their overlay mounts as a tree, and a details pane."""

from __future__ import annotations

import time
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
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static, Tree
from textual.worker import get_current_worker

from ovlinspect.model import Overlay, Scan, Severity
from ovlinspect.textsafe import visible
from ovlinspect.tui import labels
from ovlinspect.tui.commands import OvlCommands
from ovlinspect.tui.details import (
    DetailsPane,
    layer_details,
    namespace_details,
    overlay_details,
)
from ovlinspect.tui.export import overlay_json, timestamp, unique_path, write_new
from ovlinspect.tui.help import HelpScreen
from ovlinspect.tui.messages import MountTableChanged, ScanDone, ScanFailed
from ovlinspect.tui.mount_tree import MountTree, NodeRef
from ovlinspect.tui.namespaces import NamespaceTable
from ovlinspect.tui.view import Filter, NamespaceView, apply_filter, count, find_pid, ns_key
from ovlinspect.tui.watch import MountWatcher

Scanner = Callable[[], Scan]
DEBOUNCE = 0.5


def describe_error(error: BaseException) -> str:
    """A one-line, user-facing description of a failed scan."""
    if type(error).__name__ == "ScanError":
        return str(error)
    return f"{type(error).__name__}: {error}"


class OvlInspectApp(App[int]):
    """Browse the overlay mounts of every mount namespace, hazards first."""

    CSS_PATH = "ovlinspect.tcss"
    TITLE = "ovlinspect"
    COMMANDS: ClassVar = App.COMMANDS | {OvlCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("h", "toggle_hazards", "Hazards"),
        Binding("r", "rescan", "Rescan"),
        Binding("s", "save_svg", "SVG"),
        Binding("j", "write_json", "JSON"),
        Binding("y", "copy_json", "Copy"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
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
        self.scan_error: BaseException | None = None
        self.scan_seconds: float | None = None
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

    # ---- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield NamespaceTable(id="namespaces")
            yield MountTree(id="mounts")
        yield DetailsPane(id="details")
        yield Input(placeholder="filter: words that must all match a path, pid, comm, container "
                    "or hazard code — enter keeps it, esc clears", id="filter")
        yield Static("", id="status", markup=False)
        yield Footer(compact=True)

    @property
    def table(self) -> NamespaceTable:
        return self.query_one("#namespaces", NamespaceTable)

    @property
    def tree(self) -> MountTree:
        return self.query_one("#mounts", MountTree)

    @property
    def details(self) -> DetailsPane:
        return self.query_one("#details", DetailsPane)

    def on_mount(self) -> None:
        self.table.border_title = "Namespaces"
        self.tree.border_title = "Overlay mounts"
        self.details.border_title = "Details"
        self.query_one("#filter", Input).display = False
        self.tree.loading = True
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
        self._scanning = True
        self._scan_pending = False
        self._generation += 1
        self._update_status()
        self._scan_worker(self._generation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def _scan_worker(self, generation: int) -> None:
        worker = get_current_worker()
        started = time.monotonic()
        try:
            result = self.scanner()
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(ScanFailed(generation, exc))
            return
        if not worker.is_cancelled:
            self.post_message(ScanDone(generation, result, time.monotonic() - started))

    def on_scan_done(self, message: ScanDone) -> None:
        self.scan = message.scan
        self.scan_error = None
        self.scan_seconds = message.seconds
        self.tree.loading = False
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
        self.scan_error = message.error
        self.tree.loading = False
        text = describe_error(message.error)
        self.say(f"Scan failed: {text}", severity="error")
        if self.scan is None:
            self.details.show(Text(f"Scan failed: {visible(text)}", style="bold red"))
        self._scan_finished()

    def _scan_finished(self) -> None:
        self._scanning = False
        self._update_status()
        if self._scan_pending:
            self.request_scan()
        elif self.watch:
            if self._watch_timer is not None:
                self._watch_timer.stop()
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
            self.tree.focus()
            self._update_details()
        else:
            self.table.focus()

    def _refresh_views(self) -> None:
        """Apply the filter to the scan and update every pane, keeping cursor and expansion."""
        if self.scan is None:
            return
        self.views = apply_filter(self.scan, self.filter)
        self.views_by_key = {v.key: v for v in self.views}
        if self.selected_ns not in self.views_by_key:
            self.selected_ns = self.views[0].key if self.views else None
        self.table.show(self.views, self.selected_ns)
        self.table.border_title = Text(f"Namespaces {len(self.views)}/{len(self.scan.namespaces)}")
        self._show_tree()
        self._update_details(keep_scroll=True)
        self._update_status()

    def _show_tree(self) -> None:
        tree = self.tree
        view = self.views_by_key.get(self.selected_ns or "")
        if view is None:
            tree.clear()
            tree.root.add_leaf(Text("(no namespace matches)", style="dim"))
            self._tree_ns, self._tree_overlays = None, None
            tree.border_title = "Overlay mounts"
            return
        same_ns = view.key == self._tree_ns
        if same_ns and view.overlays == self._tree_overlays:
            return  # nothing changed: keep the tree as it is
        expanded: set[tuple[str, ...]] = set()
        cursor = None
        if same_ns:
            expanded = tree.expanded_keys()
            node = tree.cursor_node
            cursor = node.data.key if node is not None and node.data is not None else None
        tree.show_namespace(view.ns, view.overlays, view.key)
        self._tree_ns, self._tree_overlays = view.key, list(view.overlays)
        if cursor is None and tree.root.children:
            cursor = tree.root.children[0].data.key if tree.root.children[0].data else None
        tree.restore(expanded, cursor)
        lead = labels.lead_process(view.ns)
        title = Text(f"Overlay mounts {len(view.overlays)}/{len(view.ns.overlays)}")
        if lead is not None:
            title.append(f" — pid {lead.pid} ")
            title.append_text(labels.process_label(lead))
        tree.border_title = title

    def _update_details(self, keep_scroll: bool = False) -> None:
        """Show the facts of what the focused pane points at."""
        focused = self.focused
        renderable: RenderableType | None = None
        if isinstance(focused, MountTree):
            node = focused.cursor_node
            if node is not None and node.data is not None:
                renderable = node_details(node.data)
        elif isinstance(focused, NamespaceTable) or focused is None:
            view = self.views_by_key.get(self.selected_ns or "")
            if view is not None:
                renderable = namespace_details(view.ns, self.scan)
            elif self.scan is not None:
                renderable = Text("No namespace matches the filter.", style="dim")
        if renderable is not None:
            self.details.show(renderable, keep_scroll=keep_scroll)

    def _update_status(self) -> None:
        status = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.scan is None:
            status.append("scanning…" if self._scanning else "no scan", style="bold")
        else:
            c = count(self.scan, self.views)
            status.append(f"{c.shown_namespaces}/{c.namespaces} ns · "
                          f"{c.shown_mounts}/{c.mounts} mounts  ")
            healthy = c.shown_mounts - sum(c.severities.values())
            for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
                status.append(f"{labels.symbol(severity)} {c.severities[severity]} "
                              f"{labels.word(severity)}  ",
                              style=labels.severity_style(severity))
            status.append(f"✔ {healthy} ok", style="green")
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
        self.query_one("#status", Static).update(status)

    # ---- events ---------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#namespaces")
    def _namespace_highlighted(self) -> None:
        table = self.table
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
        self.tree.focus()

    @on(Tree.NodeHighlighted, "#mounts")
    def _node_highlighted(self) -> None:
        if self.focused is self.tree:
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
        self.query_one("#filter", Input).display = False
        self.tree.focus() if self.tree.root.children else self.table.focus()

    # ---- actions --------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Open the filter input."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear and close the filter."""
        box = self.query_one("#filter", Input)
        was_open = box.display
        box.display = False
        if was_open:
            self.table.focus()
        if self.filter.query:
            box.value = ""  # posts Input.Changed, which refreshes the views
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

    def action_quit(self) -> None:  # type: ignore[override]
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

    def selected_overlay(self) -> Overlay | None:
        """The mount under the tree cursor (or the only one shown)."""
        node = self.tree.cursor_node
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
            box = self.query_one("#filter", Input)
            box.display = False
            with box.prevent(Input.Changed):
                box.value = ""
        self.selected_ns = key
        self._refresh_views()
        if mount_id is None:
            self.table.focus()
            return
        for node in self.tree.root.children:
            if node.data is not None and node.data.overlay is not None \
                    and node.data.overlay.mount_id == mount_id:
                _ = self.tree.last_line
                self.tree.move_cursor(node)
                break
        self.tree.focus()

    def say(self, message: str, *, severity: str = "information") -> None:
        """Notify with untrusted text: control characters made visible, markup off."""
        self.notify(visible(message), severity=severity, markup=False)  # type: ignore[arg-type]


def node_details(ref: NodeRef) -> RenderableType:
    """The details of a tree node: its layer, else its mount, else its namespace."""
    if ref.overlay is not None and ref.layer is not None:
        return layer_details(ref.overlay, ref.layer)
    if ref.overlay is not None:
        return overlay_details(ref.overlay)
    return namespace_details(ref.ns)

