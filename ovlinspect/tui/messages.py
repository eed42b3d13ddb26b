"""Messages that workers post back to the app (``post_message`` is thread-safe)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ovlinspect.model import Scan


class ScanDone(Message):
    """A scan finished."""

    def __init__(self, generation: int, scan: Scan) -> None:
        super().__init__()
        self.generation = generation
        self.scan = scan


class ScanStep(Message):
    """A step of a progressive scan: a :class:`~ovlinspect.engine.progressive.Listed` or
    :class:`~ovlinspect.engine.progressive.Analysed`."""

    def __init__(self, generation: int, step: Any) -> None:
        super().__init__()
        self.generation = generation
        self.step = step


class ScanFailed(Message):
    """A scan raised; ``error`` is the exception (a ScanError has a user-facing message)."""

    def __init__(self, generation: int, error: BaseException) -> None:
        super().__init__()
        self.generation = generation
        self.error = error


class NamespacesChanged(Message):
    """Mount namespaces changed (mounts came or went, a namespace appeared or is gone):
    ``changes`` are :class:`~ovlinspect.tui.watch.NsChange` records."""

    def __init__(self, changes: list[Any]) -> None:
        super().__init__()
        self.changes = changes


class MountWatchEnded(Message):
    """The mount watcher's loop ended; ``error`` says why when it failed (untrusted text)."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class NamespacesRescanned(Message):
    """Some namespaces were scanned again: ``part`` is an
    :class:`~ovlinspect.engine.rescan.Rescanned`, to merge into the scan held now (unless a
    full scan began after it)."""

    def __init__(self, part: Any, generation: int) -> None:
        super().__init__()
        self.part = part
        self.generation = generation
        """The full-scan generation when the rescan began."""


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
