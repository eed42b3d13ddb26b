"""Messages that workers post back to the app (``post_message`` is thread-safe)."""

from __future__ import annotations

from textual.message import Message

from ovlinspect.model import Scan


class ScanDone(Message):
    """A scan finished."""

    def __init__(self, generation: int, scan: Scan) -> None:
        super().__init__()
        self.generation = generation
        self.scan = scan


class ScanFailed(Message):
    """A scan raised; ``error`` is the exception (a ScanError has a user-facing message)."""

    def __init__(self, generation: int, error: BaseException) -> None:
        super().__init__()
        self.generation = generation
        self.error = error


class MountTableChanged(Message):
    """The mount table of the namespaces of ``pids`` changed (POLLPRI on their mountinfo)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__()
        self.pids = pids
