"""The data model every output renders: namespaces, overlay mounts, layers and hazards.

Plain dataclasses with no behaviour beyond (de)serialisation, so the TUI, the JSON writer and the
plain renderer all show the same facts.  This module must never import textual.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, Literal

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "Handle",
    "Hazard",
    "Layer",
    "Namespace",
    "Overlay",
    "OverlayOptions",
    "Process",
    "Role",
    "Scan",
    "Severity",
    "SymlinkStep",
    "Verified",
    "plain",
    "worst",
]

Role = Literal["upper", "work", "lower", "data"]


class Severity(StrEnum):
    """How bad a hazard is; ordered so that ``max()`` gives the worst."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Verified(StrEnum):
    """Whether a declared layer path is proven to be the layer the overlay uses."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNVERIFIED = "unverified"


@dataclass
class Hazard:
    """One problem found on an overlay mount or one of its layers."""

    code: str
    severity: Severity
    layer: str | None
    message: str
    hint: str


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
        """The JSON document, versioned by ``schema``."""
        return {"schema": SCHEMA_VERSION, **plain(asdict(self))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scan:
        """Rebuild a scan from :meth:`to_dict` output (used for fixtures and saved reports)."""
        return _build(cls, data)


def worst(hazards: list[Hazard]) -> Severity | None:
    """The worst severity in ``hazards``, or None."""
    return max((h.severity for h in hazards), key=lambda s: s.rank, default=None)


def plain(value: Any) -> Any:
    """Enums to their values, recursively (dataclasses.asdict keeps them as members)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


_NESTED: dict[str, Any] = {}


def _build(cls: Any, data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = _NESTED.get(f"{cls.__name__}.{f.name}")
        if kind is None or value is None:
            kwargs[f.name] = value
        elif isinstance(kind, list):
            kwargs[f.name] = [_convert(kind[0], v) for v in value]
        else:
            kwargs[f.name] = _convert(kind, value)
    return cls(**kwargs)


def _convert(kind: Any, value: Any) -> Any:
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    return _build(kind, value)


_NESTED.update(
    {
        "Scan.namespaces": [Namespace],
        "Namespace.processes": [Process],
        "Namespace.overlays": [Overlay],
        "Overlay.options": OverlayOptions,
        "Overlay.layers": [Layer],
        "Overlay.hazards": [Hazard],
        "Overlay.root_handle": Handle,
        "Layer.symlinks": [SymlinkStep],
        "Layer.handle": Handle,
        "Layer.verified": Verified,
        "Layer.hazards": [Hazard],
        "Hazard.severity": Severity,
    }
)
