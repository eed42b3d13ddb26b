"""The list of mount namespaces: worst-hazard badge, lead process, overlay count."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets.data_table import ColumnKey

from ovlinspect.tui import labels
from ovlinspect.tui.mount_view import RowTable
from ovlinspect.tui.view import NS_COLUMNS, NamespaceView, Sort

COLUMNS = tuple(zip(("badge", "pid", "process", "ovl"), NS_COLUMNS, strict=True))
BATCH = 200
FIRST_BATCH = 60
"""Rows in the first batch: a screenful, so the first frame comes at once."""


_CELLS: dict[tuple[object, ...], tuple[object, tuple[Text, ...]]] = {}


def _cells(view: NamespaceView) -> tuple[Text, ...]:
    """The row's cells, built once per namespace object and what is shown of it (the entry
    holds the namespace, so its id cannot be reused while cached)."""
    key = (id(view.ns), view.live_overlays, view.worst, view.gone_since, view.was, view.pending)
    hit = _CELLS.get(key)
    if hit is not None and hit[0] is view.ns:
        return hit[1]
    if len(_CELLS) > 4096:
        _CELLS.clear()
    cells = labels.namespace_cells(view.ns, view.live_overlays, view.worst,
                                   gone_since=view.gone_since, before=view.was,
                                   pending=view.pending)
    _CELLS[key] = (view.ns, cells)
    return cells


class NamespaceTable(RowTable):
    """One row per namespace, keyed by :func:`~ovlinspect.tui.view.ns_key`.

    Rows are added in batches so that a host with hundreds of namespaces paints at once; a rescan
    that keeps the same rows only updates their cells, so the cursor and scroll stay put.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("shift+left", "scroll_left", "Scroll left", show=False),
        Binding("shift+right", "scroll_right", "Scroll right", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.row_keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._pending: list[NamespaceView] = []
        self._want_cursor: str | None = None
        self._fill = 0

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show_sort(self, order: Sort) -> None:
        """Mark the sort column's header with an arrow (▼ worst or smallest first)."""
        for key, label in COLUMNS:
            column = self.columns.get(ColumnKey(key))
            if column is not None:
                arrow = ("▲" if order.reverse else "▼") if label == order.column else ""
                column.label = Text(f"{label}{arrow}")
        self._clear_caches()  # the header row is cached with the old labels
        self.refresh()

    @property
    def restoring(self) -> bool:
        """True while batches are still being added and the cursor is not yet in place."""
        return bool(self._pending) or self._want_cursor is not None

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor."""
        if 0 <= self.cursor_row < len(self.row_keys):
            return self.row_keys[self.cursor_row]
        return None

    def show(self, views: list[NamespaceView], cursor: str | None,
             done: Callable[[], None] | None = None) -> None:
        """Show ``views`` and put the cursor on the row keyed ``cursor`` when it exists."""
        keys = [v.key for v in views]
        if keys == self.row_keys and not self._pending:
            for view in views:
                cells = _cells(view)
                old = self._cells.get(view.key)
                for i, ((col, _), cell) in enumerate(zip(COLUMNS, cells, strict=True)):
                    if old is None or old[i] != cell:
                        self.update_cell(view.key, col, cell)
                self._cells[view.key] = cells
            self.move_to(cursor)
            if done:
                done()
            return
        self.clear()
        self.row_keys, self._index, self._cells = [], {}, {}
        self._pending = list(views)
        self._want_cursor = cursor
        self._fill += 1
        self._add_batch(self._fill, done)

    def _add_batch(self, fill: int, done: Callable[[], None] | None) -> None:
        if fill != self._fill:  # a newer show() took over
            return
        size = FIRST_BATCH if not self.row_keys else BATCH
        batch, self._pending = self._pending[:size], self._pending[size:]
        for view in batch:
            self._index[view.key] = len(self.row_keys)
            self.row_keys.append(view.key)
            self._cells[view.key] = cells = _cells(view)
            self.add_row(*cells, key=view.key)
        if self._want_cursor in self._index:
            self.move_to(self._want_cursor)
            self._want_cursor = None
        if self._pending:
            self.call_after_refresh(self._add_batch, fill, done)
            return
        self._want_cursor = None
        if done:
            done()

    def move_to(self, key: str | None) -> None:
        """Put the cursor on the row keyed ``key`` (if shown)."""
        row = self._index.get(key) if key is not None else None
        if row is not None and row != self.cursor_row:
            self.move_cursor(row=row, animate=False)
