"""What the files and changes views share: the mount they show, Esc, their header, failures."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.screen import Screen

from ovlinspect.report.textsafe import visible
from ovlinspect.tui.messages import ViewFailed


class MountView(Screen[None]):
    """A screen about one overlay mount of a live process (``pid``'s namespace)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back")]

    def __init__(self, pid: int, mount_id: int, mount_point: str) -> None:
        super().__init__()
        self.pid = pid
        self.mount_id = mount_id
        self.mount_point = mount_point
        self.error: str | None = None
        self.notes: list[str] = []

    def heading(self, kind: str) -> Text:
        """``KIND /mount/point  #ID  pid PID``: the start of the view's header line."""
        text = Text(f"{kind} ", style="bold", end="")
        text.append(visible(self.mount_point), style="bold")
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
