"""The changes view (``c``): one overlay's changes since its image, with ``ovlinspect diff``'s
marks (A added, C changed, M metadata, D deleted, R renamed) and a filter.

The changes are streamed from the upper in a thread worker
(:func:`ovlinspect.changes.walk.iter_changes`) and added in batches as they come.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Input
from textual.worker import get_current_worker

from ovlinspect.tui import labels
from ovlinspect.tui.keys import bindings
from ovlinspect.tui.messages import ChangesBatch, ViewFailed
from ovlinspect.tui.mount_view import MountView

BATCH = 500
"""Changes per message (one ``add_row`` batch)."""
MAX_CHANGES = 200_000
"""Stop reading after this many changes (a note says so)."""
MARK_ORDER: tuple[str | None, ...] = (None, "A", "C", "M", "D", "R")


def change_row(change: Any) -> tuple[Text, Text, Text]:
    """The mark (letter and word), type and path (``from`` for a renamed directory)."""
    path = labels.safe(change.path)
    if change.from_path is not None:
        path.append("  ← from ", style="dim")
        labels.put(path, change.from_path)
    return labels.change_mark(change.kind.mark), Text(change.type), path


class ChangesScreen(MountView):
    """The changes of one overlay mount, as ``ovlinspect diff`` lists them."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("views", "changes")

    def __init__(self, pid: int, mount_id: int, mount_point: str) -> None:
        super().__init__(pid, mount_id, mount_point, "changes")
        self.changes: list[Any] = []
        self.shown: list[Any] = []
        self.counts: dict[str, int] = {}
        self.mark_filter: str | None = None
        self.path_query = ""
        self.done = False
        self.filter_box = Input(placeholder="words that must all be in the path — enter keeps "
                                "it, esc clears", id="changes-filter")

    def compose(self) -> ComposeResult:
        yield self.head
        yield self.table
        yield self.filter_box
        yield self.status
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table.add_column("mark", key="mark", width=10)
        self.table.add_column("type", key="type", width=7)
        self.table.add_column("path", key="path")
        self.filter_box.display = False
        self.filter_box.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        head = self.heading("changes")
        head.append("   since the image: the upper against the lowers", style="dim")
        self.head.update(head)
        self.table.focus()
        self.table.loading = True
        self._show_status()
        self._stream()

    @work(thread=True, exclusive=True, exit_on_error=False, group="changes")
    def _stream(self) -> None:
        from ovlinspect.changes.source import open_targets
        from ovlinspect.changes.walk import iter_changes
        from ovlinspect.kernel.objects import NoAtimeRefused

        worker = get_current_worker()
        try:
            targets = open_targets(self.pid, self.mount_point)
        except Exception as exc:
            self.post_message(ViewFailed(str(exc) or type(exc).__name__))
            return
        target = next((t for t in targets if t.result.mount_id == self.mount_id), None)
        for other in targets:
            if other is not target and other.source is not None:
                other.source.close()
        if target is None:
            self.post_message(ViewFailed(f"mount #{self.mount_id} is no longer the overlay at "
                                         f"{self.mount_point} (unmounted or covered): rescan"))
            return
        if target.source is None:
            if target.result.error:
                self.post_message(ViewFailed(target.result.error))
            else:
                self.post_message(ChangesBatch([], target.result.notes, True))
            return
        notes = list(target.result.notes)
        batch: list[Any] = []
        total = 0
        try:
            for change in iter_changes(target.source):
                if worker.is_cancelled:
                    return
                if total >= MAX_CHANGES:
                    notes.append(f"only the first {MAX_CHANGES} changes are listed")
                    break
                batch.append(change)
                total += 1
                if len(batch) >= BATCH:
                    self.post_message(ChangesBatch(batch, notes, False))
                    batch, notes = [], []
        except NoAtimeRefused:
            self.post_message(ViewFailed("the upper cannot be read without changing its atimes "
                                         "(O_NOATIME needs CAP_FOWNER)"))
            return
        except OSError as exc:
            self.post_message(ViewFailed(f"the upper could not be read: {exc.strerror or exc}"))
            return
        finally:
            target.source.close()
        self.post_message(ChangesBatch(batch, notes, True))

    def on_changes_batch(self, message: ChangesBatch) -> None:
        self.table.loading = False
        self.changes += message.changes
        for change in message.changes:
            mark = change.kind.mark
            self.counts[mark] = self.counts.get(mark, 0) + 1
        self.notes += message.notes
        self.done = message.done
        with self.app.batch_update():
            self._add([c for c in message.changes if self._passes(c)])
        self._show_status()

    def failed(self) -> None:
        self.table.loading = False

    def _passes(self, change: Any) -> bool:
        if self.mark_filter is not None and change.kind.mark != self.mark_filter:
            return False
        if not self.path_query:
            return True
        where = f"{change.path} {change.from_path or ''}".lower()
        return all(term in where for term in self.path_query.lower().split())

    def _add(self, changes: list[Any]) -> None:
        for change in changes:
            self.table.add_row(*change_row(change), key=str(len(self.shown)))
            self.shown.append(change)

    def _rebuild(self) -> None:
        with self.app.batch_update():
            self.table.clear()
            self.shown = []
            self._add([c for c in self.changes if self._passes(c)])
        self._show_status()

    def _show_status(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.error is not None:
            text.append("error: ", style="bold red")
            labels.put(text, self.error)
            self.status.update(text)
            return
        text.append(f"{len(self.changes)} changes")
        for mark in MARK_ORDER[1:]:
            assert mark is not None
            if self.counts.get(mark):
                text.append("  ")
                text.append(f"{mark} {self.counts[mark]}", style=labels.MARK_STYLE[mark])
        if len(self.shown) != len(self.changes):
            text.append(f" · {len(self.shown)} shown")
        text.append(" · " + ("complete" if self.done else "reading…"),
                    style="" if self.done else "bold")
        text.append(" · marks: ")
        if self.mark_filter is None:
            text.append("all (m)")
        else:
            text.append_text(labels.change_mark(self.mark_filter))
        if self.path_query:
            text.append(" · path: ")
            labels.put(text, self.path_query)
        for note in self.notes[:2]:
            text.append(" · ")
            labels.put(text, note, "yellow")
        self.status.update(text)

    def action_cycle_mark(self) -> None:
        """Show only one mark: all → A → C → M → D → R → all."""
        self.mark_filter = MARK_ORDER[(MARK_ORDER.index(self.mark_filter) + 1) % len(MARK_ORDER)]
        self._rebuild()

    def action_filter(self) -> None:
        """Open the path filter; the focus moves at once, so what is typed after ``/`` in the
        same burst lands in it."""
        self.filter_box.display = True
        self.set_focus(self.filter_box)

    @on(Input.Changed, "#changes-filter")
    def _query_changed(self, event: Input.Changed) -> None:
        self.path_query = event.value
        self._rebuild()

    @on(Input.Submitted, "#changes-filter")
    def _query_submitted(self) -> None:
        self.filter_box.display = False
        self.table.focus()

    def action_close(self) -> None:
        """Esc: close the filter if it is open, else back to the mounts."""
        if self.filter_box.display:
            self.filter_box.display = False
            if self.path_query:
                with self.filter_box.prevent(Input.Changed):
                    self.filter_box.value = ""
                self.path_query = ""
                self._rebuild()
            self.table.focus()
            return
        self.app.pop_screen()
