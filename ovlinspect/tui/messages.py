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


class ViewFailed(Message):
    """A files or changes view could not read what it shows; ``text`` says why (untrusted)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class FilesReady(Message):
    """The files view's session is open: its layer labels (top first), root and notes."""

    def __init__(self, layers: list[str], root: str, notes: list[str]) -> None:
        super().__init__()
        self.layers = layers
        self.root = root
        self.notes = notes


class FilesPage(Message):
    """One page of a merged directory (``request`` is what was asked: (rel, after))."""

    def __init__(self, request: tuple[str, str | None], page: object) -> None:
        super().__init__()
        self.request = request
        self.page = page  # an ovlinspect.provenance.browse.Page


class HiddenPage(Message):
    """Names hidden below a merged directory (a page of ``hidden_entries``); ``done`` at the
    end."""

    def __init__(self, rel: str, hidden: list[object], notes: list[str], done: bool) -> None:
        super().__init__()
        self.rel = rel
        self.hidden = hidden
        self.notes = notes
        self.done = done


class ChangesBatch(Message):
    """Changes streamed from one overlay's upper; ``done`` with the last batch."""

    def __init__(self, changes: list[object], notes: list[str], done: bool) -> None:
        super().__init__()
        self.changes = changes
        self.notes = notes
        self.done = done
