"""What the files and changes views share: the mount they show, Esc, their header, failures."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ovlinspect.tui import labels
from ovlinspect.tui.keys import bindings
from ovlinspect.tui.messages import ViewFailed


class RowTable(DataTable[Any]):
    """A row-cursor table whose home / end move the cursor (and so load what follows)."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("panes")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")

    def action_first(self) -> None:
        """Home: the first row."""
        if self.row_count:
            self.move_cursor(row=0)

    def action_last(self) -> None:
        """End: the last row."""
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class MountView(Screen[None]):
    """A screen about one overlay mount of a live process (``pid``'s namespace)."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("views")

    def __init__(self, pid: int, mount_id: int, mount_point: str, kind: str) -> None:
        """``kind`` names the view: its widgets' ids are ``KIND-head``, ``-table``, ``-status``."""
        super().__init__()
        self.pid = pid
        self.mount_id = mount_id
        self.mount_point = mount_point
        self.error: str | None = None
        self.notes: list[str] = []
        self.table = RowTable(id=f"{kind}-table")
        self.head = Static("", id=f"{kind}-head", markup=False)
        self.status = Static("", id=f"{kind}-status", markup=False)

    def heading(self, kind: str) -> Text:
        """``KIND /mount/point  #ID  pid PID``: the start of the view's header line."""
        text = Text(f"{kind} ", style="bold", end="")
        labels.put(text, self.mount_point, "bold")
        text.append(f"  #{self.mount_id}  pid {self.pid}", style="dim")
        return text

    def on_view_failed(self, message: ViewFailed) -> None:
        """The worker could not read the mount: stop loading and say why."""
        self.error = message.text
        self.failed()
        self._show_status()

    def failed(self) -> None:
        """Hook: what a view drops when its worker fails."""

    def _show_status(self) -> None:
        raise NotImplementedError

    def action_close(self) -> None:
        """Back to the mounts (their cursor is where it was)."""
        self.app.pop_screen()
