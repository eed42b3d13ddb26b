"""What analysing one overlay needs and holds: the namespace's views, and each layer's open
directory while the mount is analysed (every fd is closed by :func:`close_all`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ovlinspect.host.fsindex import Filesystem, FsIndex
from ovlinspect.host.view import View
from ovlinspect.kernel.objects import DirFacts, NoAtimeRefused, list_names
from ovlinspect.model import Layer, Proof, ProofMethod, Strength, Verified
from ovlinspect.model.reasons import MEANING, Reason

NAME_LIMIT = 512


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Outer:
    """A view outside the namespace (an ancestor's, or pid 1's) for paths that are not inside."""

    view: View
    index: FsIndex
    label: str

    def __init__(self, view: View, index: FsIndex, label: str) -> None:
        self.view = view
        self.index = index
        self.label = label


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class NamespaceContext:
    """What analysing the overlays of one mount namespace needs."""

    view: View | None
    index: FsIndex | None
    outer_factory: Callable[[], list[Outer]] | None = None
    cwd: str | None = None
    no_view_reason: str = ""
    can_decode: bool = True
    decode_reason: str = ""
    _outers: list[Outer] | None = None

    def __init__(
        self,
        view: View | None,
        index: FsIndex | None,
        outer_factory: Callable[[], list[Outer]] | None = None,
        cwd: str | None = None,
        no_view_reason: str = "",
        can_decode: bool = True,
        decode_reason: str = "",
        _outers: list[Outer] | None = None,
    ) -> None:
        self.view = view
        self.index = index
        self.outer_factory = outer_factory
        self.cwd = cwd
        self.no_view_reason = no_view_reason
        self.can_decode = can_decode
        self.decode_reason = decode_reason
        self._outers = _outers

    @property
    def outers(self) -> list[Outer]:
        """Views outside the namespace (an ancestor's, pid 1's), opened on first use: a
        healthy namespace whose paths all resolve inside never needs them."""
        if self._outers is None:
            self._outers = self.outer_factory() if self.outer_factory is not None else []
        return self._outers

    def indexes(self) -> list[FsIndex]:
        """The namespace's own index first, then the outer ones."""
        own = [self.index] if self.index is not None else []
        return own + [o.index for o in self.outers]


@dataclass
class LayerState:
    """A declared layer and the open O_PATH fd of the directory its path resolved to."""

    layer: Layer
    fd: int | None = None
    facts: DirFacts | None = None
    index: FsIndex | None = None
    fs: Filesystem | None = None
    base_note: str = ""
    self_covered: bool = False
    # errno of a failed attempt to follow the declared path, when one failed for a reason other
    # than a missing name (EPERM, EACCES, ELOOP, ...): where the path leads is then unknown
    # (see engine.resolution.unfollowed)
    resolve_errno: int | None = None
    _names: list[str] | None = None
    _name_set: frozenset[str] | None = None
    names_refused: bool = False

    @property
    def label(self) -> str:
        """``upper``, ``work``, ``lower[i]``, ``data[j]``."""
        return self.layer.label

    @property
    def is_position(self) -> bool:
        """Upper and lowers: the layers that serve merged objects by name."""
        return self.layer.role in ("upper", "lower")

    def names(self) -> list[str]:
        """Up to NAME_LIMIT top-level names (sorted), read once, without touching atime."""
        if self._names is None:
            self._names = []
            if self.fd is not None:
                try:
                    self._names = list_names(self.fd, NAME_LIMIT)
                except NoAtimeRefused:
                    self.names_refused = True
        return self._names

    def name_set(self) -> frozenset[str] | None:
        """The top-level names as a set, or None when the listing is incomplete (cut at
        NAME_LIMIT, or refused): then only a lookup can tell whether a name is here."""
        names = self.names()
        if self.names_refused or len(names) >= NAME_LIMIT:
            return None
        if self._name_set is None:
            self._name_set = frozenset(names)
        return self._name_set

    @property
    def proven(self) -> bool:
        """Proven to be the layer in use."""
        return self.layer.verified == Verified.MATCH

    def set(self, verdict: Verified, reason: Reason, method: ProofMethod = ProofMethod.NONE,
            strength: Strength | None = None, note: str = "") -> None:
        """Record the verdict, its proof and the note (the base note is appended)."""
        self.layer.verified = verdict
        self.layer.proof = Proof(method=method, strength=strength, reason=reason.value)
        text = note or MEANING[reason]
        self.layer.verify_note = "; ".join(n for n in (text, self.base_note) if n)


def close_all(states: list[LayerState]) -> None:
    """Close every layer fd."""
    for state in states:
        if state.fd is not None:
            os.close(state.fd)
            state.fd = None
