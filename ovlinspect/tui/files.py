"""The files view (``f``): one overlay's merged tree, directory by directory, with the layer that
serves each entry, its markers, and on request the names a higher layer hides.

Every read happens in thread workers (:mod:`ovlinspect.provenance.browse`, bounded pages); the
results come back as messages and rows are added page by page, so a key press never waits for
I/O and a directory of 100k entries loads while the app stays responsive.
"""

from __future__ import annotations

import contextlib
import posixpath
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from ovlinspect.report.textsafe import visible
from ovlinspect.tui import labels
from ovlinspect.tui.keys import bindings
from ovlinspect.tui.messages import FilesPage, FilesReady, HiddenPage, ViewFailed
from ovlinspect.tui.mount_view import MountView

PAGE = 500
"""Entries per page of a directory (each page is one bounded ``list_dir`` call)."""
HIDDEN_PAGE = 1000
"""Names examined per ``hidden_entries`` call."""
PREFETCH = 50
"""Load the next page when the cursor comes this close to the last row."""
MARKS = (("↑", "copied-up"), ("◐", "metacopy"), ("↪", "redirected"), ("■", "opaque"),
         ("⊕", "merged"), ("✗", "hidden"))


@dataclass
class DirState:
    """What is loaded of one merged directory."""

    rel: str
    entries: list[Any] = field(default_factory=list)   # browse.Entry
    hidden: list[Any] = field(default_factory=list)    # browse.Hidden
    more: bool = True
    next_after: str | None = None
    hidden_done: bool = False
    notes: list[str] = field(default_factory=list)


def entry_marks(entry: Any) -> Text:
    """An entry's markers, each a symbol and a word."""
    text = Text(end="")
    parts: list[tuple[str, str]] = []
    if entry.copied_up:
        parts.append(("↑ copied-up", "green"))
    if entry.metacopy:
        parts.append(("◐ metacopy", "cyan"))
    if entry.redirect:
        parts.append((f"↪ redirect {visible(entry.redirect)}", "magenta"))
    if entry.opaque:
        parts.append(("■ opaque", "yellow"))
    if entry.merged:
        parts.append((f"⊕ merged {entry.merged}", "dim"))
    for i, (word, style) in enumerate(parts):
        if i:
            text.append("  ")
        text.append(word, style=style)
    return text


def entry_name(name: str, kind: str, *, hidden: bool = False) -> Text:
    """A name, made visible, with ``/`` after a directory."""
    text = labels.safe(name, "dim strike" if hidden else ("bold" if kind == "dir" else ""))
    if kind == "dir":
        text.append("/")
    return text


def hidden_marks(item: Any) -> Text:
    """Why a hidden object is not visible: ``✗ whiteout in upper``."""
    text = Text(end="")
    text.append(f"✗ {item.reason}", style="red")
    text.append(" in ")
    text.append_text(labels.layer_tag(item.by.label, width=0))
    return text


def legend(layers: list[str]) -> Text:
    """The layers in their colours, then the markers."""
    text = Text("layers ", style="bold", end="")
    for label in layers:
        text.append_text(labels.layer_tag(label, width=0))
        text.append("  ")
    text.append("│ marks ", style="bold")
    for symbol, word in MARKS:
        text.append(f"{symbol} {word}  ")
    return text


class FilesScreen(MountView):
    """A lazy browser of one overlay's merged tree."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("views", "files")

    def __init__(self, pid: int, mount_id: int, mount_point: str) -> None:
        super().__init__(pid, mount_id, mount_point, "files")
        self.layer_labels: list[str] = []
        self.root: str | None = None
        self.cwd: str | None = None
        self.dirs: dict[str, DirState] = {}
        self.layer_filter: str | None = None
        self.show_hidden = False
        self.rows: list[tuple[str, Any]] = []  # ("up" | "entry" | "hidden", item)
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._session: Any = None
        self._closed = False
        self._page_wanted: tuple[str, str | None] | None = None
        self._hidden_wanted: str | None = None
        self.legend = Static("", id="files-legend", markup=False)

    def compose(self) -> ComposeResult:
        yield self.head
        yield self.legend
        yield self.table
        yield self.status
        yield Footer(compact=True)

    def _columns(self) -> None:
        self.table.add_column("layer", key="layer", width=9)
        self.table.add_column("type", key="type", width=6)
        self.table.add_column("marks", key="marks")
        self.table.add_column("name", key="name")

    def on_mount(self) -> None:
        self._columns()
        self.table.focus()
        self.table.loading = True
        self._show_head()
        self._open()

    def on_unmount(self) -> None:
        self._closed = True
        self.app.run_worker(self._close_session, thread=True, exit_on_error=False,
                            group="files-close")

    # ---- workers (threads) --------------------------------------------------------------

    def _close_session(self) -> None:
        with self._lock:
            if self._stack is not None:
                self._stack.close()
            self._stack = self._session = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-open")
    def _open(self) -> None:
        from ovlinspect.provenance.which import inspector

        stack = contextlib.ExitStack()
        try:
            with self._lock:
                ins = stack.enter_context(inspector(self.pid))
                session = ins.session(self.mount_id)
                if session is None:
                    stack.close()
                    self.post_message(ViewFailed(f"mount #{self.mount_id} is not an overlay "
                                                 f"in pid {self.pid}'s mount namespace"))
                    return
                if self._closed:
                    stack.close()
                    return
                self._stack, self._session = stack, session
                layers = [layer.label for layer in session.layers()]
                notes = [layer.note for layer in session.layers() if layer.note]
                root = session.prefix
        except Exception as exc:
            stack.close()
            self.post_message(ViewFailed(str(exc) or type(exc).__name__))
            return
        self.post_message(FilesReady(layers, root, notes))

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-page")
    def _load_page(self, rel: str, after: str | None) -> None:
        from ovlinspect.provenance.browse import list_dir

        worker = get_current_worker()
        try:
            with self._lock:
                if self._session is None or worker.is_cancelled:
                    return
                page = list_dir(self._session, rel, PAGE, after)
        except Exception as exc:
            self.post_message(ViewFailed(f"{rel or '/'}: {exc}"))
            return
        if not worker.is_cancelled:
            self.post_message(FilesPage((rel, after), page))

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-hidden")
    def _load_hidden(self, rel: str) -> None:
        from ovlinspect.provenance.browse import hidden_entries

        worker = get_current_worker()
        after: str | None = None
        first = True
        while not worker.is_cancelled:
            try:
                with self._lock:
                    if self._session is None:
                        return
                    page = hidden_entries(self._session, rel, HIDDEN_PAGE, after)
            except Exception as exc:
                self.post_message(ViewFailed(f"{rel or '/'}: {exc}"))
                return
            # The names an opaque directory covers come with every page: keep the first's.
            items = page.hidden if first else [h for h in page.hidden if h.reason != "opaque"]
            done = not page.more or page.next_after is None
            if worker.is_cancelled:
                return
            self.post_message(HiddenPage(rel, items, page.notes if first else [], done))
            if done:
                return
            first, after = False, page.next_after

    # ---- messages ------------------------------------------------------------------------

    def on_files_ready(self, message: FilesReady) -> None:
        self.layer_labels = message.layers
        self.root = message.root
        self.notes = message.notes
        self.legend.update(legend(self.layer_labels))
        self.table.loading = False
        self.enter(message.root)

    def failed(self) -> None:
        self.table.loading = False
        self._page_wanted = None

    def on_files_page(self, message: FilesPage) -> None:
        if message.request != self._page_wanted:
            return
        self._page_wanted = None
        rel, _after = message.request
        page: Any = message.page
        state = self.dirs.setdefault(rel, DirState(rel))
        state.entries += page.entries
        state.more = page.more
        state.next_after = page.next_after
        state.notes += [n for n in page.notes if n not in state.notes]
        if rel == self.cwd:
            self.table.loading = False
            with self.app.batch_update():
                self._add_rows([("entry", e) for e in page.entries if self._passes(e.layer)])
            self._show_status()
            self._maybe_more()

    def on_hidden_page(self, message: HiddenPage) -> None:
        state = self.dirs.get(message.rel)
        if state is None or message.rel != self._hidden_wanted:
            return
        state.hidden += message.hidden
        state.notes += [n for n in message.notes if n not in state.notes]
        if message.done:
            state.hidden_done = True
            self._hidden_wanted = None
        if message.rel == self.cwd and self.show_hidden:
            if any(self._passes(h.hidden) for h in message.hidden):
                self._rebuild(self._cursor_key())  # hidden names go above the entries
            else:
                self._show_status()

    # ---- showing -------------------------------------------------------------------------

    def enter(self, rel: str, cursor_name: str | None = None) -> None:
        """Show the directory ``rel`` (loading its first page if needed)."""
        self.cwd = rel
        self.error = None
        state = self.dirs.setdefault(rel, DirState(rel))
        self._rebuild(None if cursor_name is None else ("entry", cursor_name))
        if not state.entries and state.more:
            self._request_page(state)
        if self.show_hidden:
            self._request_hidden(state)

    def _request_page(self, state: DirState) -> None:
        request = (state.rel, state.next_after)
        if self._page_wanted == request:
            return
        self._page_wanted = request
        if not state.entries:
            self.table.loading = True
        self._load_page(*request)
        self._show_status()

    def _request_hidden(self, state: DirState) -> None:
        if state.hidden_done or self._hidden_wanted == state.rel:
            return
        state.hidden = []
        self._hidden_wanted = state.rel
        self._load_hidden(state.rel)

    def _passes(self, ref: Any) -> bool:
        return self.layer_filter is None or ref.label == self.layer_filter

    def _cursor_key(self) -> tuple[str, str] | None:
        row = self.table.cursor_row
        if not 0 <= row < len(self.rows) or self.rows[row][0] == "up":
            return None
        kind, item = self.rows[row]
        return kind, item.name

    def _rebuild(self, cursor: tuple[str, str] | None = None) -> None:
        """Every row of the current directory again (a new directory, filter or hidden names):
        ``..``, the hidden names (on request), then the entries; the cursor on ``cursor``."""
        state = self.dirs[self.cwd or ""]
        rows: list[tuple[str, Any]] = []
        if self.cwd != self.root:
            rows.append(("up", None))
        if self.show_hidden:
            rows += [("hidden", h) for h in state.hidden if self._passes(h.hidden)]
        rows += [("entry", e) for e in state.entries if self._passes(e.layer)]
        with self.app.batch_update():
            self.table.clear(columns=True)  # column widths follow this directory's names
            self._columns()
            self.rows = []
            self._add_rows(rows)
            target = 0
            if cursor is not None:
                target = next((i for i, (kind, item) in enumerate(self.rows)
                               if kind == cursor[0] and item.name == cursor[1]), 0)
            if self.rows:
                self.table.move_cursor(row=target, animate=False, scroll=True)
        self._show_head()
        self._show_status()

    def _add_rows(self, rows: list[tuple[str, Any]]) -> None:
        table = self.table
        for kind, item in rows:
            key = str(len(self.rows))
            self.rows.append((kind, item))
            if kind == "up":
                table.add_row(Text(""), Text("dir"), Text("parent directory", style="dim"),
                              Text("../", style="bold"), key=key)
            elif kind == "entry":
                table.add_row(labels.layer_tag(item.layer.label), Text(item.kind),
                              entry_marks(item), entry_name(item.name, item.kind), key=key)
            else:
                table.add_row(labels.layer_tag(item.hidden.label, hidden=True),
                              Text("hidden", style="dim"), hidden_marks(item),
                              entry_name(item.name, "file", hidden=True), key=key)

    def _maybe_more(self) -> None:
        """Load the next page when the cursor nears the end, or when a filter leaves fewer
        rows than a screen shows."""
        state = self.dirs.get(self.cwd or "")
        if state is None or not state.more or self._page_wanted is not None:
            return
        near_end = self.table.cursor_row >= len(self.rows) - PREFETCH
        if near_end or len(self.rows) < self.table.size.height + PREFETCH:
            self._request_page(state)

    def _show_head(self) -> None:
        text = self.heading("files")
        if self.cwd is not None:
            text.append("   dir ")
            shown = self.cwd
            if self.root and shown.startswith(self.root):
                shown = shown[len(self.root):]
            labels.put(text, "/" + shown.strip("/"), "bold cyan")
        self.head.update(text)

    def _show_status(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.error is not None:
            text.append("error: ", style="bold red")
            labels.put(text, self.error)
            self.status.update(text)
            return
        state = self.dirs.get(self.cwd or "")
        if state is None:
            text.append("opening the overlay's layers…", style="bold")
            self.status.update(text)
            return
        shown = sum(1 for kind, _ in self.rows if kind == "entry")
        text.append(f"{len(state.entries)} entries loaded")
        if self.layer_filter is not None:
            text.append(f" ({shown} shown)")
        text.append(" · ")
        if self._page_wanted is not None and self._page_wanted[0] == state.rel:
            text.append("loading…", style="bold")
        elif state.more:
            text.append("more below (move down to load)", style="bold")
        else:
            text.append("complete")
        if self.show_hidden:
            text.append(f" · {len(state.hidden)} hidden")
            if not state.hidden_done:
                text.append(" (reading…)")
        text.append(" · layer filter: ")
        if self.layer_filter is None:
            text.append("all (l)")
        else:
            text.append_text(labels.layer_tag(self.layer_filter, width=0))
        for note in [*self.notes, *state.notes][:2]:
            text.append(" · ")
            labels.put(text, note, "yellow")
        self.status.update(text)

    # ---- events and actions --------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#files-table")
    def _highlighted(self) -> None:
        self._maybe_more()

    @on(DataTable.RowSelected, "#files-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        row = event.cursor_row
        if not 0 <= row < len(self.rows):
            return
        kind, item = self.rows[row]
        if kind == "up":
            self.action_parent()
        elif kind == "entry" and item.kind == "dir":
            self.enter(posixpath.join(self.cwd or "", item.name))

    def action_parent(self) -> None:
        """Back to the parent directory, the cursor on the one we came from."""
        if self.cwd is None or self.cwd == self.root:
            return
        parent, name = posixpath.split(self.cwd)
        self.enter(parent, cursor_name=name)

    def action_cycle_layer(self) -> None:
        """Show only what one layer serves (or hides): all → upper → lower[0] → … → all."""
        if not self.layer_labels:
            return
        order: list[str | None] = [None, *self.layer_labels]
        self.layer_filter = order[(order.index(self.layer_filter) + 1) % len(order)]
        if self.cwd is not None:
            self._rebuild(self._cursor_key())
            self._maybe_more()

    def action_toggle_hidden(self) -> None:
        """Show or hide the lower objects that whiteouts and opaque directories hide."""
        self.show_hidden = not self.show_hidden
        if self.cwd is None:
            return
        state = self.dirs[self.cwd]
        if self.show_hidden:
            self._request_hidden(state)
        self._rebuild(self._cursor_key())

