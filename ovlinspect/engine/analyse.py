"""Analyse one overlay mount: resolve each declared layer, prove it by file handle, flag hazards.

The proof follows KERNEL-NOTES.md: the overlay root's AT_HANDLE_FID handle names the upper root
(or the top lower root of a lower-only mount); probe objects that only one declared lower holds
prove that lower; merged entries whose filesystem uuid is mounted nowhere reveal detached sources.
Nothing here writes: directories are read with O_NOATIME and lookups use O_PATH.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ovlinspect.host.fsindex import FsIndex
from ovlinspect.host.view import Resolution, View, is_fd_path
from ovlinspect.kernel.handles import (
    OverlayFid,
    decode_overlay_handle,
    format_uuid,
    is_null_uuid,
    to_model,
)
from ovlinspect.kernel.objects import (
    DirFacts,
    NoAtimeRefused,
    exists,
    facts,
    get_xattr,
    handle_of,
    is_whiteout,
    list_names,
)
from ovlinspect.kernel.syscalls import (
    AT_EMPTY_PATH,
    AT_HANDLE_FID,
    AT_HANDLE_MNT_ID_UNIQUE,
    name_to_handle_at,
)
from ovlinspect.model import Layer, Overlay, OverlayOptions, Verified
from ovlinspect.model.hazards import hazard
from ovlinspect.mounts.mountinfo import MountEntry, unescape
from ovlinspect.mounts.overlayopts import is_volatile, parse_overlay_options

LEGACY_LIMIT = 4096
PROBE_LIST_LIMIT = 512
PROBE_TRIES = 8
REVERSE_LIMIT = 256


@dataclass
class Outer:
    """A view outside the namespace (an ancestor's, or pid 1's) for paths that are not inside."""

    view: View
    index: FsIndex
    label: str


@dataclass
class NamespaceContext:
    """What analysing the overlays of one mount namespace needs."""

    view: View | None
    index: FsIndex | None
    outers: list[Outer] = field(default_factory=list)
    cwd: str | None = None
    no_view_reason: str = ""
    can_decode: bool = True
    decode_reason: str = ""


@dataclass
class _Work:
    """A layer and the open fd of its resolved directory while the mount is analysed."""

    layer: Layer
    fd: int | None = None
    facts: DirFacts | None = None
    index: FsIndex | None = None
    base_note: str = ""


def declared_layers(opts: OverlayOptions) -> list[Layer]:
    """The layers in the order the overlay uses them: upper, work, lowers top-first, data."""
    layers: list[Layer] = []
    if opts.upperdir is not None:
        layers.append(Layer(role="upper", index=0, declared=opts.upperdir))
    if opts.workdir is not None:
        layers.append(Layer(role="work", index=0, declared=opts.workdir))
    layers += [Layer(role="lower", index=i, declared=p) for i, p in enumerate(opts.lowerdir)]
    layers += [Layer(role="data", index=i, declared=p) for i, p in enumerate(opts.datadir)]
    return layers


def text_hazards(overlay: Overlay) -> None:
    """Hazards the options string alone shows (used live and for --from-file)."""
    opts = overlay.options
    if overlay.fs_type.startswith("fuse."):
        overlay.hazards.append(hazard(
            "no-layer-info", None,
            f"{overlay.fs_type} mounts list no layers in mountinfo"))
        return
    if opts.legacy_length >= LEGACY_LIMIT:
        overlay.hazards.append(hazard(
            "options-near-limit", None,
            f"replaying these options with mount(2) needs {opts.legacy_length} bytes "
            f"(limit {LEGACY_LIMIT})"))
    for layer in overlay.layers:
        if is_fd_path(layer.declared):
            what = "a detached mount ('/')" if layer.declared == "/" else "a file descriptor"
            layer.hazards.append(hazard(
                "fd-path", layer.label, f"{layer.label} was given as {what}: {layer.declared}"))
        elif not layer.declared.startswith("/"):
            layer.hazards.append(hazard(
                "relative-path", layer.label,
                f"{layer.label} path {layer.declared!r} is relative to an unrecorded cwd"))
    upper = next((layer for layer in overlay.layers if layer.role == "upper"), None)
    if upper is not None and is_volatile(opts):
        upper.hazards.append(hazard(
            "volatile", "upper", "upper layer is volatile: no sync, discard after a crash"))


def parse_overlay(entry: MountEntry) -> Overlay:
    """The overlay as the mountinfo line alone describes it."""
    opts, warnings = parse_overlay_options(entry.super_options)
    overlay = Overlay(
        mount_id=entry.mount_id,
        unique_id=None,
        mount_point=entry.mount_point,
        fs_type=entry.fs_type,
        source=entry.source,
        mount_options=entry.mount_options,
        super_options=unescape(entry.super_options),
        options=opts,
        layers=[] if entry.fs_type.startswith("fuse.") else declared_layers(opts),
        notes=list(warnings),
    )
    text_hazards(overlay)
    return overlay


def analyse(entry: MountEntry, ctx: NamespaceContext) -> Overlay:
    """Parse, resolve and verify one overlay mount in its namespace."""
    overlay = parse_overlay(entry)
    if not overlay.layers:
        return overlay
    if ctx.view is None:
        for layer in overlay.layers:
            layer.verify_note = ctx.no_view_reason
        return overlay
    with _open_root(ctx.view, entry, overlay) as root_fd:
        _Analysis(overlay, ctx, root_fd).run()
    return overlay


@contextmanager
def _open_root(view: View, entry: MountEntry, overlay: Overlay) -> Iterator[int | None]:
    fd, why = view.open_mount(entry.mount_point, entry.mount_id)
    if fd is None and why and "covered" in why:
        overlay.hazards.append(hazard("shadowed-mount", None, why))
    elif fd is None:
        overlay.notes.append(why or "overlay root unreachable")
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


class _Analysis:
    """The state of analysing one overlay; every fd it opens is closed by :meth:`run`."""

    def __init__(self, overlay: Overlay, ctx: NamespaceContext, root_fd: int | None) -> None:
        self.overlay = overlay
        self.ctx = ctx
        self.root_fd = root_fd
        self.root_fid: OverlayFid | None = None
        self.work = [_Work(layer) for layer in overlay.layers]
        self.proven_base: str | None = None
        self.proven_by = ""

    def run(self) -> None:
        try:
            self._root_handle()
            self._resolve_all()
            self._verify_upper_or_top()
            self._verify_lowers()
            self._verify_work()
            self._verify_data()
            self._reverse_probe()
            self._real_paths()
            self._path_hazards()
        finally:
            for item in self.work:
                if item.fd is not None:
                    os.close(item.fd)

    # -- the overlay's own handle ------------------------------------------------------------
    def _root_handle(self) -> None:
        if self.root_fd is None:
            return
        try:
            raw = name_to_handle_at(
                self.root_fd, "", AT_EMPTY_PATH | AT_HANDLE_FID | AT_HANDLE_MNT_ID_UNIQUE)
        except OSError as exc:
            self.overlay.notes.append(f"overlay root handle: {exc.strerror}")
            return
        self.overlay.unique_id = raw.mount_id
        self.overlay.root_handle = to_model(raw)
        self.root_fid = decode_overlay_handle(raw)
        if self.root_fid is None:
            # ovl_can_decode_fh() needs CAP_DAC_READ_SEARCH in the initial user namespace at
            # mount time; overlays mounted in a user namespace (rootless) fall back to inode
            # handles, which name no layer.
            self.overlay.notes.append(
                f"the overlay gives no overlay file handles (type {raw.type:#x}, not 0xf8): it was "
                "mounted without CAP_DAC_READ_SEARCH in the initial user namespace (e.g. "
                "rootless), so no layer can be proven by handle")

    # -- resolution ----------------------------------------------------------------------------
    def _resolve_all(self) -> None:
        bases = self._relative_bases()
        for item in sorted(self.work, key=lambda i: not self._is_root_layer(i.layer)):
            declared = item.layer.declared
            if is_fd_path(declared):
                item.layer.verify_note = "declared by file descriptor; proven only by handle"
                continue
            if declared.startswith("/"):
                self._resolve_absolute(item)
            else:
                self._resolve_relative(item, bases)

    def _relative_bases(self) -> list[str]:
        """Plausible cwds of the mounter, most telling first.

        The ancestors of the root layer's real path (decoded from the overlay's own handle) come
        first: one of them is the cwd the relative path was typed in.  Then the process's cwd and
        the mount point's ancestors.  Whichever is used is proven, or the note says it is a guess.
        """
        bases: list[str] = []
        anchors = [self._decoded_root_path(), self.ctx.cwd, self.overlay.mount_point]
        for anchor in anchors:
            if not anchor or not anchor.startswith("/"):
                continue
            path = anchor if anchor is self.ctx.cwd else posixpath.dirname(anchor)
            while path not in bases:
                bases.append(path)
                path = posixpath.dirname(path)
        return bases

    def _decoded_root_path(self) -> str | None:
        """The real path of the layer the overlay root handle names, in this namespace's view."""
        fid = self.root_fid
        if fid is None or not self.ctx.can_decode or self.ctx.index is None:
            return None
        if not any(not i.layer.declared.startswith("/") for i in self.work):
            return None  # only relative paths need it
        return self.ctx.index.decode(fid.uuid, fid.type, fid.fid).path

    def _adopt(self, item: _Work, res: Resolution, index: FsIndex | None) -> None:
        item.fd, res.fd = res.fd, None
        item.index = index
        item.layer.symlinks = res.symlinks
        assert item.fd is not None
        item.facts = facts(item.fd)
        f = item.facts
        item.layer.dev, item.layer.ino = f.dev, f.ino
        item.layer.fs_uuid = format_uuid(f.uuid)
        item.layer.mount_id = f.mount_id
        item.layer.handle = to_model(f.handle)
        mount = index.by_id.get(f.mount_id) if index and f.mount_id is not None else None
        item.layer.fs_type = mount.fs_type if mount else None

    def _resolve_absolute(self, item: _Work) -> None:
        assert self.ctx.view is not None
        res = self.ctx.view.resolve(item.layer.declared)
        if res.fd is not None:
            item.layer.path = res.path
            self._adopt(item, res, self.ctx.index)
            return
        for outer in self.ctx.outers:
            found = outer.view.resolve(item.layer.declared)
            if found.fd is not None:
                item.layer.host_path = found.path
                item.base_note = f"found outside the namespace, in {outer.label}"
                self._adopt(item, found, outer.index)
                return
        item.layer.symlinks = res.symlinks
        item.layer.verify_note = f"does not resolve: {res.error}"

    def _resolve_relative(self, item: _Work, bases: list[str]) -> None:
        """Try each plausible cwd; keep the one the overlay's handles prove, else the first."""
        assert self.ctx.view is not None
        if self.proven_base is not None:
            res = self.ctx.view.resolve(item.layer.declared, self.proven_base)
            if res.fd is not None:
                item.layer.path = res.path
                item.base_note = (f"relative to {self.proven_base} (the cwd proven for "
                                  f"{self.proven_by})")
                self._adopt(item, res, self.ctx.index)
                return
        first: tuple[str, Resolution] | None = None
        for base in bases:
            res = self.ctx.view.resolve(item.layer.declared, base)
            if res.fd is None:
                continue
            if self._proves_root(item, res.fd):
                if first is not None:
                    first[1].close()
                item.layer.path = res.path
                item.base_note = f"relative to {base} (proven by the overlay root handle)"
                self.proven_base, self.proven_by = base, item.layer.label
                self._adopt(item, res, self.ctx.index)
                return
            if first is None:
                first = (base, res)
            else:
                res.close()
        if first is None:
            item.layer.verify_note = ("relative to an unknown cwd: found under none of "
                                      f"{len(bases)} candidate directories")
            return
        base, res = first
        item.layer.path = res.path
        item.base_note = f"relative to {base} (a guess: the mounter's cwd was not recorded)"
        self._adopt(item, res, self.ctx.index)

    def _proves_root(self, item: _Work, fd: int) -> bool:
        """Would this candidate be proven by the root handle (upper, or top lower)?"""
        fid = self.root_fid
        if fid is None or not self._is_root_layer(item.layer):
            return False
        handle = handle_of(fd)
        return handle is not None and fid.matches(handle)

    def _is_root_layer(self, layer: Layer) -> bool:
        has_upper = any(i.layer.role == "upper" for i in self.work)
        return layer.role == "upper" if has_upper else (layer.role == "lower" and layer.index == 0)

    # -- verification ------------------------------------------------------------------------------
    def _set(self, item: _Work, verdict: Verified, note: str) -> None:
        item.layer.verified = verdict
        item.layer.verify_note = "; ".join(n for n in (note, item.base_note) if n)

    def _verify_upper_or_top(self) -> None:
        item = next((i for i in self.work if self._is_root_layer(i.layer)), None)
        if item is None or item.facts is None:
            return
        fid = self.root_fid
        if fid is None:
            self._set(item, Verified.UNVERIFIED, "the overlay gives no overlay root handle "
                      "(see the mount's notes)")
            return
        self._compare(item, fid, "the overlay root handle")

    def _compare(self, item: _Work, fid: OverlayFid, what: str) -> None:
        f = item.facts
        assert f is not None
        if f.handle is None:
            self._set(item, Verified.UNVERIFIED, "the layer's filesystem gives no file handle")
            return
        same_handle = fid.matches(f.handle)
        if is_null_uuid(fid.uuid):
            verdict = Verified.MATCH if same_handle else Verified.MISMATCH
            self._set(item, verdict, f"{what} {'matches' if same_handle else 'differs'} "
                      "(null fs uuid: handle compared alone)")
        elif same_handle and f.uuid == fid.uuid:
            self._set(item, Verified.MATCH, f"{what} names this directory")
        else:
            self._set(item, Verified.MISMATCH, f"{what} names another object "
                      f"(fs {format_uuid(fid.uuid)}, handle {fid.fid.hex()})")

    def _higher_fds(self, item: _Work) -> list[int]:
        out = []
        for other in self.work:
            if other is item:
                break
            if other.layer.role in ("upper", "lower") and other.fd is not None:
                out.append(other.fd)
        return out

    def _verify_lowers(self) -> None:
        for item in self.work:
            if item.layer.role != "lower" or self._is_root_layer(item.layer):
                continue
            if item.facts is None or item.fd is None:
                continue
            if self.root_fd is None:
                self._set(item, Verified.UNVERIFIED, "overlay root unreachable: no probe possible")
                continue
            if self.root_fid is None and self.overlay.root_handle is not None:
                self._set(item, Verified.UNVERIFIED, "the overlay gives no overlay file handles, "
                          "so probes prove nothing (see the mount's notes)")
                continue
            self._probe(item)

    def _probe(self, item: _Work) -> None:
        """Prove a lower with a name only it holds, looked up in the merged tree."""
        assert item.fd is not None and self.root_fd is not None
        try:
            names = list_names(item.fd, PROBE_LIST_LIMIT)
        except NoAtimeRefused:
            self._set(item, Verified.UNVERIFIED, "probe skipped: reading the layer would change "
                      "its atime (O_NOATIME needs CAP_FOWNER)")
            return
        higher = self._higher_fds(item)
        tried = differ = 0
        for name in names:
            if is_whiteout(item.fd, name) or any(exists(fd, name) for fd in higher):
                continue
            try:
                mfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.root_fd)
            except OSError:
                continue  # hidden by something a higher layer holds that we could not see
            try:
                raw = name_to_handle_at(mfd, "", AT_EMPTY_PATH | AT_HANDLE_FID)
            except OSError:
                continue
            finally:
                os.close(mfd)
            fid = decode_overlay_handle(raw)
            mine = handle_of(item.fd, name)
            if fid is None or mine is None:
                continue
            tried += 1
            if fid.matches(mine) and (is_null_uuid(fid.uuid) or fid.uuid == item.facts.uuid):
                self._set(item, Verified.MATCH, f"probe {name!r} in the merged tree is this "
                          "layer's object")
                return
            differ += 1
            if tried >= PROBE_TRIES:
                break
        if differ and all(o.layer.verified == Verified.MATCH for o in self.work
                          if o.layer.role in ("upper", "lower") and o is not item
                          and self.work.index(o) < self.work.index(item)):
            self._set(item, Verified.MISMATCH, f"{differ} probe(s) only this path holds resolve "
                      "to other objects in the merged tree")
        elif differ:
            self._set(item, Verified.UNVERIFIED, "probes resolve elsewhere, but a higher layer is "
                      "unproven")
        else:
            self._set(item, Verified.UNVERIFIED, "no probe object: every name here is also in a "
                      "higher layer, or the directory is empty")

    def _verify_work(self) -> None:
        item = next((i for i in self.work if i.layer.role == "work"), None)
        upper = next((i for i in self.work if i.layer.role == "upper"), None)
        if item is None or item.facts is None or upper is None or upper.facts is None:
            return
        if self._work_elsewhere(item, upper):
            verdict = (Verified.MISMATCH if self.root_fid is not None or
                       upper.layer.verified == Verified.MATCH else Verified.UNVERIFIED)
            self._set(item, verdict, "not on the upper layer's filesystem (the kernel requires it)")
            return
        prefix = "user" if "userxattr" in self.overlay.options.flags else "trusted"
        stored = None
        if self.overlay.options.flags.get("index") == "on" and item.fd is not None:
            try:
                ifd = os.open("index", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=item.fd)
            except OSError:
                ifd = -1
            if ifd >= 0:
                stored = get_xattr(ifd, f"{prefix}.overlay.upper")
                os.close(ifd)
        root = self.overlay.root_handle
        if stored is not None and root is not None:
            ok = stored == bytes.fromhex(root.hex)[3:]
            self._set(item, Verified.MATCH if ok else Verified.MISMATCH,
                      f"{prefix}.overlay.upper on index/ {'names' if ok else 'does not name'} "
                      "the upper root")
            return
        has_work = item.fd is not None and exists(item.fd, "work")
        self._set(item, Verified.UNVERIFIED,
                  "consistent (same filesystem as upper" + (", has work/" if has_work else "")
                  + "); the kernel exposes no workdir identity without index=on")

    def _work_elsewhere(self, item: _Work, upper: _Work) -> bool:
        """The workdir is not on the real upper's filesystem (known from the root handle)."""
        assert item.facts is not None and upper.facts is not None
        fid = self.root_fid
        if fid is not None and fid.upper and not is_null_uuid(fid.uuid):
            return item.facts.uuid != fid.uuid
        return item.facts.dev != upper.facts.dev or item.facts.uuid != upper.facts.uuid

    def _verify_data(self) -> None:
        for item in self.work:
            if item.layer.role == "data" and item.facts is not None:
                self._set(item, Verified.UNVERIFIED, "data-only layers are reached only through "
                          "metacopy redirects; no probe object")

    # -- what the merged tree says about sources ---------------------------------------------------
    def _reverse_probe(self) -> None:
        """Flag lower sources whose filesystem is mounted nowhere visible."""
        if self.root_fd is None:
            return
        unproven = [i for i in self.work if i.layer.role == "lower"
                    and i.layer.verified != Verified.MATCH]
        if not unproven:
            return
        proven = {i.facts.uuid for i in self.work
                  if i.facts is not None and i.layer.verified == Verified.MATCH}
        orphans: dict[bytes, list[str]] = {}
        try:
            names = list_names(self.root_fd, REVERSE_LIMIT)
        except NoAtimeRefused:
            return
        for name in names:
            fid = self._merged_fid(name)
            if fid is None or fid.upper or fid.uuid in proven or is_null_uuid(fid.uuid):
                continue
            if fid.uuid in orphans or not self._uuid_known(fid.uuid):
                orphans.setdefault(fid.uuid, []).append(name)
        for uuid, names_ in orphans.items():
            self._attribute_detached(uuid, names_, unproven)

    def _merged_fid(self, name: str) -> OverlayFid | None:
        assert self.root_fd is not None
        try:
            mfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.root_fd)
        except OSError:
            return None
        try:
            return decode_overlay_handle(name_to_handle_at(mfd, "", AT_EMPTY_PATH | AT_HANDLE_FID))
        except OSError:
            return None
        finally:
            os.close(mfd)

    def _indexes(self) -> list[FsIndex]:
        own = [self.ctx.index] if self.ctx.index is not None else []
        return own + [o.index for o in self.ctx.outers]

    def _uuid_known(self, uuid: bytes) -> bool:
        return any(index.known(uuid) for index in self._indexes())

    def _attribute_detached(self, uuid: bytes, names: list[str], unproven: list[_Work]) -> None:
        text = format_uuid(uuid)
        sample = ", ".join(repr(n) for n in names[:3])
        # A candidate is an unproven lower whose path leads to another filesystem (or nowhere).
        cands = [i for i in unproven if i.facts is None or i.facts.uuid != uuid]
        if len(cands) == 1:
            item = cands[0]
            if item.facts is not None:
                self._set(item, Verified.MISMATCH, f"merged entries ({sample}) come from fs "
                          f"{text}, which this path is not on")
            item.layer.hazards.append(hazard(
                "source-detached", item.layer.label,
                f"{item.layer.label}: its filesystem ({text}) is mounted nowhere visible; "
                f"only the overlay keeps it alive (serves {sample})"))
        else:
            labels = ", ".join(i.layer.label for i in cands) or "a lower"
            self.overlay.hazards.append(hazard(
                "source-detached", None,
                f"one of {labels}: fs {text} serves {sample} but is mounted nowhere visible"))

    def _real_paths(self) -> None:
        """The proven path of every matched layer; decode the root handle for its layer."""
        for other in self.work:
            if other.layer.verified == Verified.MATCH:
                other.layer.real_path = other.layer.host_path or other.layer.path
        fid = self.root_fid
        item = next((i for i in self.work if self._is_root_layer(i.layer)), None)
        if fid is None or item is None:
            return
        if item.layer.verified == Verified.MATCH:
            item.layer.real_path = item.layer.host_path or item.layer.path
            return
        if not self.ctx.can_decode:
            item.layer.verify_note += f"; real path unknown: {self.ctx.decode_reason}"
            return
        for index in self._indexes():
            found = index.decode(fid.uuid, fid.type, fid.fid)
            if found.path is not None:
                item.layer.real_path = found.path
                return
        if not self._uuid_known(fid.uuid) and not is_null_uuid(fid.uuid):
            self._mark_detached_root(item, fid)

    def _mark_detached_root(self, item: _Work, fid: OverlayFid) -> None:
        label = item.layer.label
        if item.facts is not None:
            self._set(item, Verified.MISMATCH, f"the overlay root handle names fs "
                      f"{format_uuid(fid.uuid)}, which this path is not on")
        item.layer.hazards.append(hazard(
            "source-detached", label,
            f"{label}: its filesystem ({format_uuid(fid.uuid)}) is mounted nowhere visible"))

    # -- hazards that need the resolution ---------------------------------------------
    def _path_hazards(self) -> None:
        for item in self.work:
            layer = item.layer
            codes = {h.code for h in layer.hazards}
            if layer.symlinks:
                chain = " -> ".join(f"{s.path} -> {s.target}" for s in layer.symlinks[:3])
                layer.hazards.append(hazard("symlink", layer.label,
                                            f"{layer.label} goes through symlinks: {chain}"))
            if layer.host_path is not None:
                layer.hazards.append(hazard(
                    "foreign-path", layer.label,
                    f"{layer.declared} is not in the process's namespace; outside it resolves to "
                    f"{layer.host_path} ({layer.verified.value})"))
            if "fd-path" in codes:
                continue
            if item.facts is None and "source-detached" not in codes:
                where = f"; really {layer.real_path}" if layer.real_path else ""
                layer.hazards.append(hazard(
                    "not-found", layer.label, f"{layer.declared} resolves nowhere{where}"))
            elif layer.verified == Verified.MISMATCH and "source-detached" not in codes:
                where = f"; the layer in use is {layer.real_path}" if layer.real_path else ""
                if layer.real_path and layer.real_path in (layer.path, layer.host_path):
                    where = (f"; the layer in use is the directory underneath, now covered by "
                             f"mount {layer.mount_id}")
                layer.hazards.append(hazard(
                    "stale-path", layer.label,
                    f"{layer.path or layer.host_path} is not the {layer.role} layer in use{where}"))
