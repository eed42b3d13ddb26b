"""The data model every output renders: namespaces, overlay mounts, layers and hazards.

Plain dataclasses with no behaviour beyond (de)serialisation, so the TUI, the JSON writer and the
plain renderer all show the same facts.  This module must never import textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

TYPE_CHECKING = False  # typing costs ~2 ms to import; only type checkers need it (issue #9)
if TYPE_CHECKING:
    from typing import Any, Literal

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "Backing",
    "Handle",
    "Hazard",
    "HazardCode",
    "Layer",
    "Namespace",
    "Overlay",
    "OverlayOptions",
    "Process",
    "Proof",
    "ProofMethod",
    "Role",
    "Scan",
    "Severity",
    "Status",
    "Strength",
    "SymlinkStep",
    "Verified",
    "worst",
]

if TYPE_CHECKING:
    Role = Literal["upper", "work", "lower", "data"]
else:
    Role = str  # at run time a layer role is a plain string


class Severity(StrEnum):
    """How bad a hazard is.  Ordered: ``INFO < WARNING < ERROR``, so ``max()`` gives the worst."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for error."""
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class HazardCode(StrEnum):
    """Every finding ovlinspect can report; the catalogue (model.hazards) describes each."""

    SOURCE_DETACHED = "source-detached"
    STALE_PATH = "stale-path"
    NOT_FOUND = "not-found"
    FD_PATH = "fd-path"
    FOREIGN_PATH = "foreign-path"
    RELATIVE_PATH = "relative-path"
    OPTIONS_NEAR_LIMIT = "options-near-limit"
    TOO_MANY_LOWERS = "too-many-lowers"
    VOLATILE = "volatile"
    SHADOWED_MOUNT = "shadowed-mount"
    HIDDEN_SUBMOUNT = "hidden-submount"
    SHARED_UPPER = "shared-upper"
    SYMLINK = "symlink"
    NO_LAYER_INFO = "no-layer-info"
    NO_HANDLES = "no-handles"
    UNREADABLE = "unreadable"


class Status(StrEnum):
    """An overlay's overall state, worst first: what a human should look at."""

    ERROR = "error"
    WARNING = "warning"
    UNVERIFIED = "unverified"
    INFO = "info"
    OK = "ok"

    @property
    def rank(self) -> int:
        """4 for error down to 0 for ok."""
        return _STATUS_RANK[self]


_STATUS_RANK = {Status.ERROR: 4, Status.WARNING: 3, Status.UNVERIFIED: 2, Status.INFO: 1,
                Status.OK: 0}


class ProofMethod(StrEnum):
    """How a layer's verdict was reached."""

    ROOT_HANDLE = "root-handle"
    PROBE_HANDLE = "probe-handle"
    INDEX_XATTR = "index-xattr"
    PROBE_NAME = "probe-name"
    INODE = "inode"
    NONE = "none"


class Strength(StrEnum):
    """How strong a proof is: ``proven`` by a file handle, or ``likely`` from inode numbers."""

    PROVEN = "proven"
    LIKELY = "likely"


class Verified(StrEnum):
    """Whether a declared layer path is proven to be the layer the overlay uses."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNVERIFIED = "unverified"


@dataclass
class Hazard:
    """One problem found on an overlay mount or one of its layers."""

    code: HazardCode
    severity: Severity
    layer: str | None
    message: str
    hint: str


@dataclass
class Proof:
    """How a layer's verdict was reached: the method, its strength and a stable reason code.

    ``reason`` is a code (see ``model.reasons``); the prose is the layer's ``verify_note``.
    ``strength`` is None when nothing was proven either way.
    """

    method: ProofMethod = ProofMethod.NONE
    strength: Strength | None = None
    reason: str = "not-checked"


@dataclass
class Backing:
    """What a layer's filesystem is made of: its source device and, for loop devices or
    file-backed filesystems (erofs), the image file behind it."""

    source: str | None = None
    device: str | None = None
    backing_file: str | None = None


@dataclass
class Handle:
    """A file handle as returned by name_to_handle_at: its type and its bytes in hex."""

    type: int
    hex: str


@dataclass
class SymlinkStep:
    """One symlink met while resolving a path: where it was and what it said."""

    path: str
    target: str


@dataclass
class Layer:
    """One layer of an overlay mount, as declared and as found."""

    role: Role
    index: int
    declared: str
    path: str | None = None
    host_path: str | None = None
    symlinks: list[SymlinkStep] = field(default_factory=list)
    dev: str | None = None
    ino: int | None = None
    fs_type: str | None = None
    fs_uuid: str | None = None
    mount_id: int | None = None
    handle: Handle | None = None
    real_path: str | None = None
    verified: Verified = Verified.UNVERIFIED
    verify_note: str = ""
    proof: Proof = field(default_factory=Proof)
    backing: Backing | None = None
    hazards: list[Hazard] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The name hazards use for this layer: ``upper``, ``work``, ``lower[0]``, ``data[1]``."""
        return self.role if self.role in ("upper", "work") else f"{self.role}[{self.index}]"


@dataclass
class OverlayOptions:
    """Overlay options parsed from the super-options field of mountinfo."""

    syntax: Literal["legacy", "new-api", "none"] = "legacy"
    lowerdir: list[str] = field(default_factory=list)
    datadir: list[str] = field(default_factory=list)
    upperdir: str | None = None
    workdir: str | None = None
    flags: dict[str, str] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    legacy_length: int = 0
    declared_lowers: int = 0  # lower + data-only layers the text declares (only 500 are kept)


@dataclass
class Overlay:
    """One overlay (or fuse-overlayfs) mount seen in a mount namespace."""

    mount_id: int
    unique_id: int | None
    mount_point: str
    fs_type: str
    source: str
    mount_options: str
    super_options: str
    options: OverlayOptions
    layers: list[Layer] = field(default_factory=list)
    hazards: list[Hazard] = field(default_factory=list)
    root_handle: Handle | None = None
    status: Status = Status.UNVERIFIED
    root: str = "/"
    notes: list[str] = field(default_factory=list)

    def all_hazards(self) -> list[Hazard]:
        """Mount-level hazards followed by every layer's."""
        return self.hazards + [h for layer in self.layers for h in layer.hazards]

    def worst(self) -> Severity | None:
        """The worst severity among all hazards, or None when there are none."""
        return worst(self.all_hazards())


@dataclass
class Process:
    """A process that shares a mount namespace."""

    pid: int
    comm: str
    container: str | None = None


@dataclass
class Namespace:
    """A mount namespace: its processes and its overlay mounts."""

    mnt_ns: int | None
    pids: list[int] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    overlays: list[Overlay] = field(default_factory=list)
    root_pid: int | None = None
    notes: list[str] = field(default_factory=list)

    def worst(self) -> Severity | None:
        """The worst severity over all overlays of this namespace."""
        return worst([h for o in self.overlays for h in o.all_hazards()])


@dataclass
class Scan:
    """The result of one scan: every namespace that was looked at."""

    namespaces: list[Namespace] = field(default_factory=list)
    source: str = "live"
    privileges: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, versioned by ``schema`` (see :mod:`ovlinspect.model.codec`)."""
        from ovlinspect.model.codec import scan_to_wire

        return scan_to_wire(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scan:
        """Rebuild a scan from :meth:`to_dict` output (used for fixtures and saved reports)."""
        from ovlinspect.model.codec import scan_from_wire

        return scan_from_wire(data)


def worst(hazards: list[Hazard]) -> Severity | None:
    """The worst severity in ``hazards``, or None."""
    return max((h.severity for h in hazards), default=None)
