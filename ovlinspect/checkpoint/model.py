"""The checkpoint dump (``"schema": 1``): what it takes to rebuild each overlay, field by field.

Every path is a ``str`` decoded with ``surrogateescape`` (like the rest of the model) and goes on
the wire through :func:`ovlinspect.model.codec.text_to_wire`, so bytes that are not UTF-8 survive
a dump and a restore exactly.  Conversion is explicit in both directions; :func:`dump_from_wire`
raises :class:`DumpError` on a document it cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ovlinspect.model.codec import text_from_wire, text_to_wire
from ovlinspect.model.types import Handle

DUMP_SCHEMA = 1

# Layer status in a dump.
PROVEN = "proven"          # the engine proved this is the real directory in use
UNPROVABLE = "unprovable"  # the kernel keeps no identity for it (workdir, data-only, covered)
BLOCKED = "blocked"        # cannot be restored: see the overlay's reasons
LIKELY = "likely"          # found, but only inode numbers tie it to the layer in use (no handles)

# Which view a layer's ``path`` belongs to.
VIEW_NAMESPACE = "namespace"  # the inspected process's own mount namespace (its root)
VIEW_HOST = "host"            # pid 1's namespace (container roots name host paths)
VIEW_ANCESTOR = "ancestor"    # the namespace of an ancestor process (nested namespaces)
VIEW_DUMPER = "dumper"        # the namespace ``ovlinspect dump`` ran in (when neither above)

# Blocking reasons (an open set of codes; match them as strings).
R_DETACHED = "source-detached"
R_UNVERIFIED = "unverified"
R_OUTSIDE = "outside-mounts"
R_FUSE = "fuse-overlayfs"
R_COVERED = "covered-unreachable"
R_WORK = "work-other-fs"
R_SUBDIR = "bound-subdirectory"
R_NO_LAYERS = "no-layers"
# Only inode evidence (rootless overlays give no handles): a snapshot or copy of the layer with
# the same inode numbers would look the same, so it is not proof enough to write to it.
R_LIKELY = "likely-only"

# ``dump --verify``: why an overlay's ``verified`` is not true (``reason`` of a verify entry).
V_DIFFERS = "differs"                # the rebuilt merged tree differs (see ``difference``)
V_REBUILD_FAILED = "rebuild-failed"  # a layer was not found again, or the mount failed
V_BOUNDED = "bounded"                # a bound stopped the comparison first (verified: null)
V_NOT_RESTORABLE = "not-restorable"  # the dump's reasons block it (``skipped``; verified: null)
V_LIKELY = "likely-only"             # rebuilt and compared, but some layer is only likely
V_NO_USERNS = "no-user-namespace"    # non-root: the kernel refused a user namespace
V_TRUSTED_XATTRS = "trusted-xattrs"  # non-root: a rebuild in a user namespace cannot read
                                     # trusted.overlay.* (the overlay is not ``userxattr``)
V_UNREADABLE = "unreadable"          # some entries could not be read as this user
V_LIVE_UNREACHABLE = "live-unreachable"  # the live overlay could not be opened
V_UPPER_NOT_IN_USE = "upper-not-in-use"  # the dumped upper is no mounted overlay's upper
V_NEEDS_ROOT = "needs-root"          # non-root: layers left unproven only for lack of privilege
                                     # (no-decode-privilege, noatime-refused, no-view)
V_LIVE_NOT_QUIET = "live-not-quiet"  # no read-only clone of the live mount: not read at all
V_LIVE_CHANGED = "live-changed"      # the live tree changed under the comparison (verified: null)
V_COMPARE_FAILED = "compare-failed"  # reading a tree failed (EIO, ...) (verified: null)
# ``verified: false`` because of a difference (exit status 1) ...
V_FAILURES = frozenset({V_DIFFERS, V_REBUILD_FAILED, V_UPPER_NOT_IN_USE})
# ... or because it cannot be proven here (exit status 3).
V_UNPROVEN = frozenset({V_LIKELY, V_NO_USERNS, V_TRUSTED_XATTRS, V_UNREADABLE,
                        V_LIVE_UNREACHABLE, V_NEEDS_ROOT, V_LIVE_NOT_QUIET, V_LIVE_CHANGED,
                        V_COMPARE_FAILED})


class DumpError(ValueError):
    """A document that is not a usable schema-1 checkpoint dump."""


@dataclass
class HolderMount:
    """The mount that holds a layer directory, in the layer's view."""

    mount_id: int
    unique_id: int | None
    mount_point: str
    root: str
    dev: str
    fs_type: str


@dataclass
class DumpLayer:
    """One layer: its identity, where it is, and whether it can be restored."""

    role: str
    index: int
    declared: str
    status: str = BLOCKED
    verified: str = "unverified"
    proof: dict[str, Any] = field(default_factory=dict)
    path: str | None = None           # the directory, absolute, in ``view``
    view: str | None = None
    mount: HolderMount | None = None  # the mount holding it, in ``view``
    path_in_mount: str | None = None  # relative to the mount's root dir, prefixed by its root
    restore_path: str | None = None   # the same directory in the dumper's namespace (the recipe)
    fs_uuid: str | None = None
    handle: Handle | None = None
    dev: str | None = None
    ino: int | None = None
    note: str = ""

    @property
    def label(self) -> str:
        """``upper``, ``work``, ``lower[i]``, ``data[j]`` (as the engine names layers)."""
        return self.role if self.role in ("upper", "work") else f"{self.role}[{self.index}]"


@dataclass
class Reason:
    """Why an overlay cannot be restored: a code, the layer it concerns, and a message."""

    code: str
    layer: str | None
    message: str


@dataclass
class Step:
    """One call of the recipe.

    ``fsopen`` (``value`` = fs type); ``fsconfig`` with ``cmd`` FSCONFIG_SET_STRING (``key`` =
    ``value``), FSCONFIG_SET_FLAG (``key``), FSCONFIG_SET_FD (``key``, the directory ``value``
    opened O_PATH) or FSCONFIG_CMD_CREATE; ``fsmount`` (``attrs``: mount attributes);
    ``move_mount`` (to the restore target).  ``layer`` names the layer a path step belongs to.
    """

    call: str
    cmd: str | None = None
    key: str | None = None
    value: str | None = None
    layer: str | None = None
    attrs: list[str] = field(default_factory=list)


@dataclass
class OverlayOptions:
    """The non-path options a rebuild needs, typed: booleans for on/off, strings otherwise.
    ``None`` means the option was not shown (the kernel default)."""

    index: bool | None = None
    xino: str | None = None
    redirect_dir: str | None = None
    metacopy: bool | None = None
    nfs_export: bool | None = None
    uuid: str | None = None
    volatile: bool | None = None
    fsync: str | None = None
    userxattr: bool | None = None
    verity: str | None = None
    default_permissions: bool | None = None
    sb_readonly: bool = False


BOOL_OPTIONS = ("index", "metacopy", "nfs_export")
BARE_OPTIONS = ("volatile", "userxattr", "default_permissions")
STRING_OPTIONS = ("xino", "redirect_dir", "uuid", "fsync", "verity")


@dataclass
class DumpOverlay:
    """One overlay mount and its recipe."""

    mount_id: int
    unique_id: int | None
    mount_point: str
    root: str
    fs_type: str
    propagation: list[str]
    mount_attrs: list[str]
    mnt_ns: int | None
    pid: int | None
    options: OverlayOptions
    syntax: str
    layers: list[DumpLayer] = field(default_factory=list)
    restorable: bool = False
    reasons: list[Reason] = field(default_factory=list)
    recipe: list[Step] = field(default_factory=list)
    root_handle: Handle | None = None
    super_options: str = ""

    def layer(self, label: str) -> DumpLayer | None:
        """The layer with this label."""
        return next((item for item in self.layers if item.label == label), None)


@dataclass
class Dump:
    """A whole dump: every overlay of one namespace (or one mount point)."""

    overlays: list[DumpOverlay] = field(default_factory=list)
    dumper_mnt_ns: int | None = None
    errors: list[str] = field(default_factory=list)
    verify: list[dict[str, Any]] | None = None


# -- to the wire ---------------------------------------------------------------------------------

def _t(text: str | None) -> Any:
    return None if text is None else text_to_wire(text)


def _handle(handle: Handle | None) -> Any:
    return None if handle is None else {"type": handle.type, "hex": handle.hex}


def _holder(mount: HolderMount | None) -> Any:
    if mount is None:
        return None
    return {"mount_id": mount.mount_id, "unique_id": mount.unique_id,
            "mount_point": _t(mount.mount_point), "root": _t(mount.root), "dev": mount.dev,
            "fs_type": _t(mount.fs_type)}


def _layer(item: DumpLayer) -> dict[str, Any]:
    return {
        "role": item.role, "index": item.index, "declared": _t(item.declared),
        "status": item.status, "verified": item.verified, "proof": dict(item.proof),
        "path": _t(item.path), "view": item.view, "mount": _holder(item.mount),
        "path_in_mount": _t(item.path_in_mount), "restore_path": _t(item.restore_path),
        "fs_uuid": item.fs_uuid, "handle": _handle(item.handle), "dev": item.dev,
        "ino": item.ino, "note": _t(item.note),
    }


def _step(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"call": step.call}
    if step.cmd is not None:
        out["cmd"] = step.cmd
    if step.key is not None:
        out["key"] = step.key
    if step.value is not None:
        out["value"] = _t(step.value)
    if step.layer is not None:
        out["layer"] = step.layer
    if step.attrs:
        out["attrs"] = list(step.attrs)
    return out


def _options(opts: OverlayOptions) -> dict[str, Any]:
    return {name: getattr(opts, name) for name in (*BOOL_OPTIONS, *BARE_OPTIONS,
                                                   *STRING_OPTIONS, "sb_readonly")}


def overlay_to_wire(ov: DumpOverlay) -> dict[str, Any]:
    """One overlay entry of the dump."""
    return {
        "mount_id": ov.mount_id, "unique_id": ov.unique_id, "mount_point": _t(ov.mount_point),
        "root": _t(ov.root), "fs_type": _t(ov.fs_type), "propagation": list(ov.propagation),
        "mount_attrs": list(ov.mount_attrs), "mnt_ns": ov.mnt_ns, "pid": ov.pid,
        "syntax": ov.syntax, "super_options": _t(ov.super_options),
        "root_handle": _handle(ov.root_handle), "options": _options(ov.options),
        "layers": [_layer(item) for item in ov.layers],
        "restorable": ov.restorable,
        "reasons": [{"code": r.code, "layer": r.layer, "message": _t(r.message)}
                    for r in ov.reasons],
        "recipe": [_step(s) for s in ov.recipe],
    }


def dump_to_wire(dump: Dump) -> dict[str, Any]:
    """The JSON document."""
    out: dict[str, Any] = {"schema": DUMP_SCHEMA, "kind": "ovlinspect-checkpoint",
                           "dumper_mnt_ns": dump.dumper_mnt_ns,
                           "errors": [_t(e) for e in dump.errors],
                           "overlays": [overlay_to_wire(o) for o in dump.overlays]}
    if dump.verify is not None:
        out["verify"] = dump.verify
    return out


# -- from the wire -------------------------------------------------------------------------------

def _ot(value: Any) -> str | None:
    return None if value is None else text_from_wire(value)


def _handle_from(value: Any) -> Handle | None:
    if value is None:
        return None
    return Handle(type=int(value["type"]), hex=str(value["hex"]))


def _holder_from(value: Any) -> HolderMount | None:
    if value is None:
        return None
    return HolderMount(mount_id=int(value["mount_id"]), unique_id=value.get("unique_id"),
                       mount_point=text_from_wire(value["mount_point"]),
                       root=text_from_wire(value["root"]), dev=str(value["dev"]),
                       fs_type=text_from_wire(value["fs_type"]))


def _layer_from(value: dict[str, Any]) -> DumpLayer:
    return DumpLayer(
        role=str(value["role"]), index=int(value["index"]),
        declared=text_from_wire(value["declared"]), status=str(value["status"]),
        verified=str(value["verified"]), proof=dict(value.get("proof") or {}),
        path=_ot(value.get("path")), view=value.get("view"), mount=_holder_from(value["mount"]),
        path_in_mount=_ot(value.get("path_in_mount")),
        restore_path=_ot(value.get("restore_path")), fs_uuid=value.get("fs_uuid"),
        handle=_handle_from(value.get("handle")), dev=value.get("dev"), ino=value.get("ino"),
        note=_ot(value.get("note")) or "",
    )


def _step_from(value: dict[str, Any]) -> Step:
    return Step(call=str(value["call"]), cmd=value.get("cmd"), key=value.get("key"),
                value=_ot(value.get("value")), layer=value.get("layer"),
                attrs=list(value.get("attrs") or []))


def _options_from(value: dict[str, Any]) -> OverlayOptions:
    opts = OverlayOptions()
    for name in (*BOOL_OPTIONS, *BARE_OPTIONS, *STRING_OPTIONS):
        setattr(opts, name, value.get(name))
    opts.sb_readonly = bool(value.get("sb_readonly"))
    return opts


def overlay_from_wire(value: dict[str, Any]) -> DumpOverlay:
    """One overlay entry back from JSON."""
    return DumpOverlay(
        mount_id=int(value["mount_id"]), unique_id=value.get("unique_id"),
        mount_point=text_from_wire(value["mount_point"]), root=text_from_wire(value["root"]),
        fs_type=text_from_wire(value["fs_type"]), propagation=list(value["propagation"]),
        mount_attrs=list(value["mount_attrs"]), mnt_ns=value.get("mnt_ns"),
        pid=value.get("pid"), syntax=str(value["syntax"]),
        super_options=_ot(value.get("super_options")) or "",
        root_handle=_handle_from(value.get("root_handle")),
        options=_options_from(value["options"]),
        layers=[_layer_from(v) for v in value["layers"]], restorable=bool(value["restorable"]),
        reasons=[Reason(code=str(r["code"]), layer=r.get("layer"),
                        message=text_from_wire(r["message"])) for r in value["reasons"]],
        recipe=[_step_from(s) for s in value["recipe"]],
    )


def dump_from_wire(value: Any) -> Dump:
    """A dump back from JSON; :class:`DumpError` when it is not one."""
    if not isinstance(value, dict) or value.get("kind") != "ovlinspect-checkpoint":
        raise DumpError("not an ovlinspect checkpoint dump")
    if value.get("schema") != DUMP_SCHEMA:
        raise DumpError(f"unsupported dump schema {value.get('schema')!r}")
    try:
        return Dump(overlays=[overlay_from_wire(o) for o in value["overlays"]],
                    dumper_mnt_ns=value.get("dumper_mnt_ns"),
                    errors=[text_from_wire(e) for e in value.get("errors", [])],
                    verify=value.get("verify"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DumpError(f"malformed dump: {exc!r}") from None
