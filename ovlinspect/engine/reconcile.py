"""Reconcile the merged tree's evidence with the declared layers: a verdict and a proof each.

Outcomes per layer (KERNEL-NOTES, "Proving a declared path is the layer in use"):
- ``match``: a merged object (the root, or a sampled entry) is this directory's own object;
- ``mismatch``: disproved, with the real directory in use when it can be decoded; never for a
  path that could not be followed to its end for a reason other than a missing name (EPERM,
  EACCES, ELOOP, ...): where it leads is unknown, so it is ``unverified`` (``path-unreadable``),
  whatever the evidence says about the directory really in use (:meth:`Reconciler._decide`);
- a filesystem mounted nowhere visible is recorded as detached (rules turn it into a hazard);
- ``unverified`` with a reason code otherwise.
Without overlay handles (rootless overlays, lowers that cannot export handles), inode numbers give
``likely`` evidence only, never a verdict.
"""

from __future__ import annotations

import errno
import itertools
import operator
import os
import posixpath
import stat
from collections import deque
from enum import Enum

from ovlinspect.engine.evidence import Evidence, Sample, ino_agrees, probe
from ovlinspect.engine.resolution import cwd_unknown, unfollowed
from ovlinspect.engine.state import LayerState, NamespaceContext
from ovlinspect.host.fsindex import NULL_UUID, Decoded, FsIndex, decoded_stat, same_object
from ovlinspect.host.view import is_fd_path
from ovlinspect.kernel.handles import OverlayFid, format_uuid
from ovlinspect.kernel.objects import (
    NoAtimeRefused,
    exists,
    get_xattr,
    handle_of,
    is_whiteout,
    list_names,
    lookup,
    lstat_at,
    present,
)
from ovlinspect.model import ProofMethod, Strength, Verified
from ovlinspect.model.reasons import MEANING, Reason

PROBE_TRIES = 8
DEEP_DIRS = 64
DEEP_NAMES = 128
DEEP_LEVELS = 3


class Same(Enum):
    """Is a layer's object the one an overlay handle names?"""

    YES = "yes"
    LIKELY = "likely"
    NO = "no"
    UNKNOWN = "unknown"


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Orphan:
    """Merged objects that no declared layer accounts for, grouped by where they really are."""

    kind: str  # "path" (decoded: root is the real layer root), "detached", "unresolved"
    uuid: bytes
    root: str | None = None
    index: FsIndex | None = None
    names: list[str]
    sample: Sample | None = None

    def __init__(
        self,
        kind: str,
        uuid: bytes,
        root: str | None = None,
        index: FsIndex | None = None,
        names: list[str] | None = None,
        sample: Sample | None = None,
    ) -> None:
        self.kind = kind
        self.uuid = uuid
        self.root = root
        self.index = index
        self.names = [] if names is None else names
        self.sample = sample


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Outcome:
    """What reconciling found beyond the per-layer verdicts."""

    orphans: list[Orphan]
    detached: dict[str, bytes]
    ambiguous_detached: list[tuple[list[str], Orphan]]

    def __init__(
        self,
        orphans: list[Orphan] | None = None,
        detached: dict[str, bytes] | None = None,
        ambiguous_detached: list[tuple[list[str], Orphan]] | None = None,
    ) -> None:
        self.orphans = [] if orphans is None else orphans
        self.detached = {} if detached is None else detached
        self.ambiguous_detached = [] if ambiguous_detached is None else ambiguous_detached


def _fs_keys(state: LayerState) -> list[bytes]:
    if state.fs is not None and state.fs.keys:
        return state.fs.keys
    uuid = state.facts.uuid if state.facts is not None else None
    return [uuid] if uuid else []


def same(state: LayerState, fid: OverlayFid, rel: str) -> Same:
    """Compare the layer's object at ``rel`` with the object ``fid`` names."""
    if state.fd is None:
        return Same.UNKNOWN
    handle = handle_of(state.fd, rel) if rel else handle_of(state.fd)
    if handle is None:
        return Same.UNKNOWN
    if not fid.matches(handle):
        return Same.NO
    keys = _fs_keys(state)
    if fid.uuid != NULL_UUID and keys and NULL_UUID not in keys:
        return Same.YES if fid.uuid in keys else Same.NO
    # Null or unknown uuid: the handle bytes agree; decoding on the layer's own filesystem
    # tells whether it is the same inode (ESTALE on another filesystem).
    st = lstat_at(state.fd, rel) if rel else os.fstat(state.fd)
    if state.fs is None or st is None:
        return Same.LIKELY
    verdict = same_object(state.fs.fd, fid.type, fid.fid, st)
    if verdict is None:
        return Same.LIKELY
    if not verdict:
        return Same.NO
    return Same.LIKELY if _twin_elsewhere(state, fid, st) else Same.YES


def _twin_elsewhere(state: LayerState, fid: OverlayFid, st: os.stat_result) -> bool:
    """Another filesystem with no unique uuid decodes the handle to an object that looks the
    same (squashfs handles carry generation 0, so they decode on any squashfs with that inode
    number): byte-identical images cannot be told apart."""
    assert state.index is not None and state.fs is not None
    for other in state.index.filesystems:
        if other is state.fs or not other.ambiguous:
            continue
        got = decoded_stat(other.fd, fid.type, fid.fid)
        if got is not None and _looks_same(got, st):
            return True
    return False


def _looks_same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_size, a.st_nlink, a.st_mtime_ns, a.st_uid, a.st_gid) == (
        b.st_mode, b.st_size, b.st_nlink, b.st_mtime_ns, b.st_uid, b.st_gid)


class Reconciler:
    """Reconcile one overlay's evidence with its declared layers (functions over shared data)."""

    def __init__(self, states: list[LayerState], ev: Evidence, ctx: NamespaceContext,
                 root_fd: int | None, flags: dict[str, str]) -> None:
        self.states = states
        self.ev = ev
        self.ctx = ctx
        self.root_fd = root_fd
        self.userxattr = "userxattr" in flags
        self.index_on = flags.get("index") == "on"
        self.positions = [s for s in states if s.is_position]
        self.out = Outcome()
        self.decided: set[int] = set()
        self.unattributed: list[Sample] = []
        self.differ: dict[int, list[Sample]] = {}
        self._higher_union: tuple[list[LayerState], set[str], list[LayerState]] = ([], set(), [])
        self._persistent: bool | None = None

    def run(self) -> Outcome:
        """Every stage in order; each only adds verdicts to layers still undecided."""
        self._root_layer()
        if self.ev.handles_available:
            self._attribute_samples()
        self._probe_lowers()
        if self.ev.handles_available:
            self._eliminate()
        elif self.root_fd is not None:
            self._eliminate_by_name()
        self._work()
        self._data_and_unresolved()
        self._real_paths()
        return self.out

    # -- the root layer ---------------------------------------------------------------------
    def _root_state(self) -> LayerState | None:
        return next((s for s in self.states if self.ev.is_root_layer(s)), None)

    def _decide(self, state: LayerState, verdict: Verified, reason: Reason,
                method: ProofMethod = ProofMethod.NONE, strength: Strength | None = None,
                note: str = "") -> None:
        """Record a verdict.  The one rule every stage goes through: a declared path that could
        not be followed (EPERM, EACCES, ELOOP, ...; ENOENT and ENOTDIR say it leads nowhere)
        is never disproved; the evidence against it only says where the layer really is."""
        if verdict is Verified.MISMATCH and unfollowed(state):
            shown = errno.errorcode.get(state.resolve_errno or 0, str(state.resolve_errno))
            note = (f"not disproved: the path could not be followed ({shown}); "
                    f"{note or MEANING[reason]}")
            verdict, reason, method, strength = (Verified.UNVERIFIED, Reason.PATH_UNREADABLE,
                                                  ProofMethod.NONE, None)
        elif verdict is Verified.MISMATCH and cwd_unknown(state):
            where = state.layer.real_path
            note = ("not disproved: the mounter's cwd is unknown"
                    + (f"; the layer in use is {where}" if where else ""))
            verdict, reason, method, strength = (Verified.UNVERIFIED, Reason.CWD_UNKNOWN,
                                                  ProofMethod.NONE, None)
        state.set(verdict, reason, method, strength, note)
        self.decided.add(id(state))

    def _root_layer(self) -> None:
        state = self._root_state()
        root = self.ev.root
        if state is None or root is None:
            return
        if root.fid is None:
            self._root_by_inode(state, root)
            return
        if self.ev.prefix:
            return  # the mount's root is a merged subdirectory: it is a sample like any other
        if state.fd is None and state.self_covered and self.ctx.can_decode:
            orphan = self._locate(root)
            if orphan.kind == "path" and orphan.root == state.layer.path:
                state.layer.real_path = orphan.root
                self._decide(state, Verified.MATCH, Reason.ROOT_HANDLE_MATCH,
                             ProofMethod.ROOT_HANDLE, Strength.PROVEN, "the overlay root handle "
                             "decodes to this very path, now covered by the overlay itself")
            return
        if state.fd is None:
            return
        verdict = same(state, root.fid, "")
        if verdict is Same.YES:
            self._decide(state, Verified.MATCH, Reason.ROOT_HANDLE_MATCH,
                         ProofMethod.ROOT_HANDLE, Strength.PROVEN)
        elif verdict is Same.NO:
            self._decide(state, Verified.MISMATCH, Reason.ROOT_HANDLE_DIFFERS,
                         ProofMethod.ROOT_HANDLE, Strength.PROVEN,
                         f"the overlay root handle names another object (fs "
                         f"{format_uuid(root.fid.uuid)})")
        elif verdict is Same.LIKELY:
            self._decide(state, Verified.UNVERIFIED, Reason.NO_DECODE_PRIVILEGE,
                         ProofMethod.ROOT_HANDLE, Strength.LIKELY,
                         "the root handle's bytes match, but its filesystem has no unique uuid "
                         "and decoding it needs CAP_DAC_READ_SEARCH")

    def _root_by_inode(self, state: LayerState, root: Sample) -> None:
        if state.fd is None or self.root_fd is None:
            return
        absent = self._absent(state, [])
        if absent:
            self._name_absent(state, absent, Strength.PROVEN)
            return
        if self.ev.prefix:
            return  # a merged subdirectory reports its lower origin's inode, not the upper's
        st = os.fstat(state.fd)
        if not self._dir_inodes_persistent():
            return  # layers on several filesystems without xino: directory inodes mean nothing
        if ino_agrees(root.st, st):
            self._decide(state, Verified.UNVERIFIED, Reason.INODE_CONSISTENT, ProofMethod.INODE,
                         Strength.LIKELY)
        else:
            self._decide(state, Verified.UNVERIFIED, Reason.INODE_DIFFERS, ProofMethod.INODE,
                         Strength.LIKELY, "the overlay root's inode number is not this "
                         "directory's (no handles: likely, not proven)")

    def _dir_inodes_persistent(self) -> bool:
        """From merged files when some were sampled; else, when every resolved layer is on one
        filesystem (samefs: directory inodes are the real ones).  Worked out once."""
        if self._persistent is None:
            known = self.ev.dir_inodes_persistent()
            if known is None:
                devs = {s.facts.st.st_dev for s in self.positions if s.facts is not None}
                known = len(devs) == 1 and all(s.facts is not None for s in self.positions)
            self._persistent = known
        return self._persistent

    def _in_upper(self, rel: str) -> bool:
        """The upper layer holds ``rel``: a copied-up, renamed or hard-linked object, whose handle
        names its lower origin (KERNEL-NOTES), wherever that origin now is."""
        upper = next((s for s in self.positions if s.layer.role == "upper"), None)
        if upper is None or upper.fd is None:
            return False
        return present(upper.fd, rel) is True and not _hides(upper.fd, rel, self.userxattr)

    def _absent(self, state: LayerState, higher: list[LayerState]) -> list[str]:
        """Names the layer holds (not whiteouts, not in a higher layer) missing from the merged
        tree: up to PROBE_TRIES of them."""
        assert state.fd is not None and self.root_fd is not None
        base = self._base_fd(state)
        if base is None:
            return []
        out: list[str] = []
        try:
            names = state.names() if not self.ev.prefix else _names(base)
            for name in names:
                rel = posixpath.join(self.ev.prefix, name) if self.ev.prefix else name
                if _hides(base, name, self.userxattr) or self._higher_has(higher, rel):
                    continue
                if present(self.root_fd, rel[len(self.ev.prefix):].lstrip("/")) is False:
                    out.append(name)
                    if len(out) >= PROBE_TRIES:
                        break
        finally:
            self._release(state, base)
        return out

    def _name_absent(self, state: LayerState, absent: list[str], strength: Strength) -> None:
        shown = ", ".join(repr(n) for n in absent[:3])
        verdict = Verified.MISMATCH if strength is Strength.PROVEN else Verified.UNVERIFIED
        self._decide(state, verdict, Reason.NAME_ABSENT, ProofMethod.PROBE_NAME, strength,
                     f"{shown} {'is' if len(absent) == 1 else 'are'} here but missing from the "
                     "merged tree, and no higher layer hides them")

    # -- merged samples ---------------------------------------------------------------------
    def _candidates(self, fid: OverlayFid) -> list[LayerState]:
        if fid.upper:
            return [s for s in self.positions if s.layer.role == "upper"]
        return [s for s in self.positions if s.layer.role == "lower"]

    def _attribute(self, sample: Sample) -> LayerState | None:
        """The declared layer whose object at the sample's path is the merged object."""
        assert sample.fid is not None
        first = sample.rel.split("/", 1)[0]
        for state in self._candidates(sample.fid):
            if state.fd is None:
                continue
            names = state.name_set()
            if names is not None and first not in names:
                continue
            verdict = same(state, sample.fid, sample.rel)
            if verdict in (Same.YES, Same.LIKELY):
                return state
        return None

    def _attribute_samples(self) -> None:
        samples = list(self.ev.samples)
        if self.ev.prefix and self.ev.root is not None:
            samples.insert(0, self.ev.root)
        for sample in samples:
            if sample.fid is None:
                continue
            state = self._attribute(sample)
            if state is None:
                if not self._in_upper(sample.rel):
                    self.unattributed.append(sample)
                continue
            if id(state) in self.decided:
                continue
            verdict = same(state, sample.fid, sample.rel)
            strength = Strength.PROVEN if verdict is Same.YES else Strength.LIKELY
            self._decide(
                state, Verified.MATCH if strength is Strength.PROVEN else Verified.UNVERIFIED,
                Reason.PROBE_MATCH, ProofMethod.PROBE_HANDLE, strength,
                f"merged entry {sample.rel!r} is this layer's own object")

    # -- probes from the declared layers -------------------------------------------------------
    def _probe_lowers(self) -> None:
        for i, state in enumerate(self.positions):
            if id(state) in self.decided or state.fd is None:
                continue
            if self.ev.root is None:
                self._decide(state, Verified.UNVERIFIED, Reason.NO_OVERLAY_ROOT)
                continue
            if self.root_fd is not None:
                self._probe(state, self.positions[:i])

    def _base_fd(self, state: LayerState) -> int | None:
        """The layer's directory at the mount's root: the layer's own fd when the mount is the
        overlay's root, else a new fd of the subdirectory (:meth:`_release` tells them apart)."""
        assert state.fd is not None
        return lookup(state.fd, self.ev.prefix) if self.ev.prefix else state.fd

    @staticmethod
    def _release(state: LayerState, base: int) -> None:
        if base != state.fd:
            os.close(base)

    def _probe(self, state: LayerState, higher: list[LayerState]) -> None:
        """Names this layer holds and no higher layer does, looked up in the merged tree."""
        base = self._base_fd(state)
        if base is None:
            self._decide(state, Verified.UNVERIFIED, Reason.EMPTY,
                         note="the mount's subdirectory is not in this layer")
            return
        try:
            self._probe_in(state, base, higher)
        finally:
            self._release(state, base)

    def _higher_has(self, higher: list[LayerState], rel: str) -> bool:
        """A higher layer holds ``rel``: a set lookup for top-level names of completely listed
        layers (linear in depth overall), a stat for the rest."""
        if "/" not in rel and not self.ev.prefix:
            union, rest = self._union(higher)
            return rel in union or any(exists(h.fd, rel) for h in rest if h.fd is not None)
        return any(h.fd is not None and exists(h.fd, rel) for h in higher)

    def _union(self, higher: list[LayerState]) -> tuple[set[str], list[LayerState]]:
        """Names of the completely listed ``higher`` layers, and the layers that need a stat.
        Positions are probed top first, so the cached union of a shorter prefix is extended."""
        done, union, rest = self._higher_union
        if len(done) > len(higher) or not all(map(operator.is_, done, higher)):
            done, union, rest = [], set(), []
        if len(done) < len(higher):
            union, rest = set(union), list(rest)
            for h in higher[len(done):]:
                names = h.name_set() if h.fd is not None else frozenset()
                if names is None:
                    rest.append(h)
                else:
                    union |= names
            self._higher_union = (list(higher), union, rest)
        return union, rest

    def _probe_in(self, state: LayerState, base: int, higher: list[LayerState]) -> None:
        names = state.names() if not self.ev.prefix else _names(base)
        if state.names_refused:
            self._decide(state, Verified.UNVERIFIED, Reason.NOATIME_REFUSED)
            return
        differ: list[Sample] = []
        absent: list[str] = []
        agree = disagree = tried = 0
        dirs: list[str] = []
        for name in names:
            rel = posixpath.join(self.ev.prefix, name) if self.ev.prefix else name
            if is_whiteout(base, name):
                continue
            if self._higher_has(higher, rel):
                st = lstat_at(base, name)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    dirs.append(name)
                continue
            assert self.root_fd is not None
            sample = probe(self.root_fd, self.ev, rel)
            if sample is None:
                # Absent only if no lookup finds it, a mount on the name included (a volume);
                # below a bound subdirectory an opaque higher copy may hide it: no evidence.
                if (not self.ev.prefix and not _hides(base, name, self.userxattr)
                        and present(self.root_fd, name) is False):
                    absent.append(name)
                continue
            tried += 1
            if sample.fid is not None:
                verdict = same(state, sample.fid, rel)
                if verdict is Same.YES:
                    self._decide(state, Verified.MATCH, Reason.PROBE_MATCH,
                                 ProofMethod.PROBE_HANDLE, Strength.PROVEN,
                                 f"probe {name!r} in the merged tree is this layer's object")
                    return
                if verdict is Same.NO and not self.ev.prefix and not self._in_upper(rel):
                    differ.append(sample)
            elif not self.ev.handles_available:
                if self.ev.prefix or (sample.is_dir and not self._dir_inodes_persistent()):
                    continue
                real = lstat_at(base, name)
                if real is not None and ino_agrees(sample.st, real):
                    agree += 1
                else:
                    disagree += 1
            if tried >= PROBE_TRIES:
                break
        if self.ev.handles_available and not differ and not absent and self._probe_deeper(
                state, base, dirs, higher):
            return
        if absent and all(h.proven for h in higher):
            self._name_absent(state, absent, Strength.PROVEN)
            return
        if absent and all(_settled(h) for h in higher):
            self._name_absent(state, absent, Strength.LIKELY)
            return
        if (absent or disagree) and not all(_settled(h) for h in higher):
            self._decide(state, Verified.UNVERIFIED, Reason.HIGHER_UNPROVEN)
            return
        self._conclude(state, higher, names, differ, agree, disagree)

    def _probe_deeper(self, state: LayerState, base: int, dirs: list[str],
                      higher: list[LayerState]) -> bool:
        """Where this layer serves nothing at the top, its files further down (breadth first,
        DEEP_LEVELS deep, DEEP_DIRS directories at most): positive evidence only, since a higher
        opaque or redirected directory may hide what lies below.  Files are safe to encode."""
        queue = deque((name, 1) for name in dirs)
        seen = 0
        while queue and seen < DEEP_DIRS:
            here, depth = queue.popleft()
            sub = lookup(base, here)
            if sub is None:
                continue
            seen += 1
            try:
                for child in _names(sub)[:DEEP_NAMES]:
                    inner = f"{here}/{child}"
                    st = lstat_at(sub, child)
                    if st is None or _is_whiteout_stat(st):
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if depth < DEEP_LEVELS:
                            queue.append((inner, depth + 1))
                        continue
                    rel = posixpath.join(self.ev.prefix, inner) if self.ev.prefix else inner
                    if self._higher_has(higher, rel):
                        continue
                    assert self.root_fd is not None
                    sample = probe(self.root_fd, self.ev, rel)
                    if sample is None or sample.fid is None:
                        continue
                    if same(state, sample.fid, rel) is Same.YES:
                        self._decide(state, Verified.MATCH, Reason.PROBE_MATCH,
                                     ProofMethod.PROBE_HANDLE, Strength.PROVEN,
                                     f"probe {rel!r} in the merged tree is this layer's object")
                        return True
            finally:
                os.close(sub)
        return False

    def _conclude(self, state: LayerState, higher: list[LayerState], names: list[str],
                  differ: list[Sample], agree: int, disagree: int) -> None:
        higher_proven = all(h.proven for h in higher)
        if differ and higher_proven:
            self._decide(state, Verified.MISMATCH, Reason.PROBE_DIFFERS, ProofMethod.PROBE_HANDLE,
                         Strength.PROVEN, f"{len(differ)} name(s) only this path holds are "
                         "served by other objects in the merged tree")
            self.differ[id(state)] = differ
        elif differ:
            self._decide(state, Verified.UNVERIFIED, Reason.HIGHER_UNPROVEN)
        elif agree and not disagree:
            self._decide(state, Verified.UNVERIFIED, Reason.INODE_CONSISTENT, ProofMethod.INODE,
                         Strength.LIKELY)
        elif disagree and not agree:
            self._decide(state, Verified.UNVERIFIED, Reason.INODE_DIFFERS, ProofMethod.INODE,
                         Strength.LIKELY, f"{disagree} name(s) only this path holds have other "
                         "inode numbers in the merged tree (no handles: likely, not proven)")
        elif agree and disagree:
            self._decide(state, Verified.UNVERIFIED, Reason.AMBIGUOUS, ProofMethod.INODE)
        elif not names:
            self._decide(state, Verified.UNVERIFIED, Reason.EMPTY)
        elif not higher:
            self._decide(state, Verified.UNVERIFIED, Reason.NOTHING_COMPARABLE)
        else:
            self._decide(state, Verified.UNVERIFIED, Reason.COVERED)

    # -- elimination: merged objects no declared layer accounts for ------------------------------
    def _locate(self, sample: Sample) -> Orphan:
        assert sample.fid is not None
        fid = sample.fid
        results: list[Decoded] = []
        for index in self.ctx.indexes():
            found = index.decode(fid.uuid, fid.type, fid.fid)
            results.append(found)
            if found.path is not None:
                root = _strip(found.path, sample.rel)
                if root is not None:
                    return Orphan("path", fid.uuid, root=root, names=[sample.rel], sample=sample,
                                  index=index)
        known = any(index.known(fid.uuid) for index in self.ctx.indexes())
        if not known and results and all(r.stale for r in results):
            return Orphan("detached", fid.uuid, names=[sample.rel], sample=sample)
        return Orphan("unresolved", fid.uuid, names=[sample.rel], sample=sample)

    def _eliminate(self) -> None:
        pending = [s for s in self.unattributed if s.fid is not None]
        for states_differ in self.differ.values():
            pending += states_differ
        groups: dict[tuple[str, bytes, str | None], Orphan] = {}
        for sample in pending:
            orphan = self._locate(sample)
            if self._accounted(orphan):
                continue
            key = (orphan.kind, orphan.uuid, orphan.root)
            if key in groups:
                groups[key].names.append(sample.rel)
            else:
                groups[key] = orphan
        self.out.orphans = list(groups.values())
        if not groups:
            return
        open_ = [s for s in self.positions if not s.proven and s.layer.verified !=
                 Verified.MISMATCH]
        mismatched = [s for s in self.positions if s.layer.verified == Verified.MISMATCH
                      and s.layer.real_path is None]
        targets = sorted(open_ + mismatched, key=self.positions.index)
        orphans = list(groups.values())
        if len(targets) == 1 and len(orphans) == 1:
            self._assign(targets[0], orphans[0], "the one layer no other declared path is")
            return
        if self._match_orphans(targets, orphans):
            return
        for orphan in orphans:
            if orphan.kind == "detached":
                labels = [s.label for s in targets if not _on_fs(s, orphan.uuid)]
                self.out.ambiguous_detached.append((labels, orphan))

    def _eliminate_by_name(self) -> None:
        """No handles: merged names that no declared layer holds point at the one position whose
        declared path is not its real directory (likely, unless every other one is proven)."""
        listings = []
        for state in self.positions:
            if state.fd is None:
                continue
            names = state.names()
            if state.names_refused or len(names) >= 512:
                return
            listings.append(set(names))
        known = set().union(*listings) if listings else set()
        orphans = [s.rel for s in self.ev.samples if s.rel.split("/")[-1] not in known]
        if not orphans or self.ev.prefix:
            return
        settled = (Reason.INODE_CONSISTENT.value, Reason.PROBE_MATCH.value,
                   Reason.ROOT_HANDLE_MATCH.value)
        open_ = [s for s in self.positions
                 if not s.proven and s.layer.proof.reason not in settled]
        if len(open_) != 1 or open_[0].layer.verified == Verified.MISMATCH:
            return  # ambiguous, or already explained by a disproved layer
        state = open_[0]
        others_proven = all(s.proven for s in self.positions if s is not state)
        shown = ", ".join(repr(n) for n in orphans[:3])
        if state.fd is None:
            return
        self._decide(
            state, Verified.MISMATCH if others_proven else Verified.UNVERIFIED, Reason.ELIMINATION,
            ProofMethod.PROBE_NAME, Strength.PROVEN if others_proven else Strength.LIKELY,
            f"the merged tree serves {shown}, which no declared layer holds; every other layer "
            f"is {'proven' if others_proven else 'consistent'}, so this path is not the layer "
            "in use (its filesystem cannot be named without overlay handles)")

    def _accounted(self, orphan: Orphan) -> bool:
        """The orphan's real root is a proven layer's directory (e.g. a copied-up origin)."""
        if orphan.kind != "path":
            return False
        return any(s.proven and orphan.root in (s.layer.path, s.layer.host_path)
                   for s in self.positions)

    def _assign(self, state: LayerState, orphan: Orphan, how: str) -> None:
        """``orphan``'s directory is the real layer at ``state``'s position (``how`` says why)."""
        names = ", ".join(repr(n) for n in orphan.names[:3])
        if orphan.kind == "path":
            state.layer.real_path = orphan.root
            if state.self_covered and orphan.root in (state.layer.path, state.layer.host_path):
                self._decide(state, Verified.MATCH, Reason.ELIMINATION, ProofMethod.PROBE_HANDLE,
                             Strength.PROVEN, f"merged entries ({names}) decode to this very "
                             f"path, now covered by the overlay itself; {how}")
            elif is_fd_path(state.layer.declared):
                self._decide(state, Verified.MATCH, Reason.ELIMINATION, ProofMethod.PROBE_HANDLE,
                             Strength.PROVEN, f"declared by file descriptor; merged entries "
                             f"({names}) decode to {orphan.root}, {how}")
            else:
                self._decide(state, Verified.MISMATCH, Reason.ELIMINATION,
                             ProofMethod.PROBE_HANDLE, Strength.PROVEN,
                             f"merged entries ({names}) come from {orphan.root}, {how}; this "
                             "path does not hold them")
        elif orphan.kind == "detached":
            self.out.detached[state.label] = orphan.uuid
            if state.fd is None and not is_fd_path(state.layer.declared):
                self._decide(state, Verified.MISMATCH, Reason.FS_DETACHED,
                             ProofMethod.PROBE_HANDLE, Strength.PROVEN,
                             f"merged entries ({names}) come from fs "
                             f"{format_uuid(orphan.uuid)}, which is mounted nowhere visible; "
                             "this path resolves nowhere")
            elif state.fd is not None and not _on_fs(state, orphan.uuid):
                self._decide(state, Verified.MISMATCH, Reason.FS_DETACHED,
                             ProofMethod.PROBE_HANDLE, Strength.PROVEN,
                             f"merged entries ({names}) come from fs "
                             f"{format_uuid(orphan.uuid)}, which is mounted nowhere visible and "
                             "which this path is not on (the handle does not decode here)")
            else:
                self._decide(state, Verified.UNVERIFIED, Reason.FS_DETACHED,
                             ProofMethod.PROBE_HANDLE, Strength.PROVEN)

    def _match_orphans(self, targets: list[LayerState], orphans: list[Orphan]) -> bool:
        """As many decoded directories as open positions: their order decides which is which."""
        if len(targets) != len(orphans) or any(o.kind != "path" for o in orphans):
            return False
        ordered = self._order(orphans)
        if ordered is None:
            return False
        for state, orphan in zip(targets, ordered, strict=True):
            self._assign(state, orphan, f"which the {len(targets)} unproven layers' order "
                         "puts here (a name served from a higher one exists in the lower one)")
        return True

    def _order(self, orphans: list[Orphan]) -> list[Orphan] | None:
        """Highest first, when each consecutive pair is proven ordered by shadowing."""
        def above(a: Orphan, b: Orphan) -> bool:
            assert b.index is not None and b.root is not None
            try:
                fd = b.index.view.open(b.root)
            except OSError:
                return False
            try:
                return any(lstat_at(fd, rel) is not None and not is_whiteout(fd, rel)
                           for rel in a.names)
            finally:
                os.close(fd)

        ordered = sorted(orphans, key=lambda o: -sum(above(o, x) for x in orphans if x is not o))
        for high, low in itertools.pairwise(ordered):
            if not above(high, low) or above(low, high):
                return None
        return ordered

    # -- work and data layers -------------------------------------------------------------------
    def _work(self) -> None:
        work = next((s for s in self.states if s.layer.role == "work"), None)
        upper = next((s for s in self.states if s.layer.role == "upper"), None)
        if work is None or work.facts is None or upper is None:
            return
        fid = self.ev.root.fid if self.ev.root is not None else None
        real_keys = [fid.uuid] if fid is not None and fid.upper and fid.uuid != NULL_UUID else []
        work_keys = _fs_keys(work)
        if real_keys and work_keys and NULL_UUID not in work_keys:
            elsewhere = real_keys[0] not in work_keys
        elif upper.facts is not None and upper.proven:
            elsewhere = work.facts.dev != upper.facts.dev
        else:
            elsewhere = None
        if elsewhere:
            self._decide(work, Verified.MISMATCH, Reason.WORK_OTHER_FS, ProofMethod.ROOT_HANDLE,
                         Strength.PROVEN)
            return
        self._work_index(work)

    def _work_index(self, work: LayerState) -> None:
        prefix = "user" if self.userxattr else "trusted"
        stored = None
        if self.index_on and work.fd is not None:
            ifd = lookup(work.fd, "index")
            if ifd is not None:
                stored = get_xattr(ifd, f"{prefix}.overlay.upper")
                os.close(ifd)
        root = self.ev.root_handle
        if stored is not None and root is not None and not self.ev.prefix:
            ok = stored == bytes.fromhex(root.hex)[3:]
            self._decide(work, Verified.MATCH if ok else Verified.MISMATCH,
                         Reason.INDEX_XATTR_MATCH if ok else Reason.INDEX_XATTR_DIFFERS,
                         ProofMethod.INDEX_XATTR, Strength.PROVEN)
            return
        self._decide(work, Verified.UNVERIFIED, Reason.WORK_SAME_FS)

    def _data_and_unresolved(self) -> None:
        for state in self.states:
            if id(state) in self.decided:
                continue
            if state.self_covered:
                self._decide(state, Verified.UNVERIFIED, Reason.WORK_COVERED
                             if state.layer.role == "work" else Reason.SELF_COVERED)
            elif state.fd is None:
                self._decide(state, Verified.UNVERIFIED, Reason.PATH_UNREADABLE
                             if unfollowed(state) else Reason.NOT_RESOLVED)
            elif state.layer.role == "data":
                self._decide(state, Verified.UNVERIFIED, Reason.DATA_ONLY)
            elif not self.ev.handles_available and self.ev.root is not None:
                self._decide(state, Verified.UNVERIFIED, Reason.NOT_CHECKED)

    def _real_paths(self) -> None:
        """The proven path of every matched layer; the decoded root for the root layer."""
        for state in self.states:
            layer = state.layer
            if layer.verified == Verified.MATCH and layer.real_path is None:
                layer.real_path = layer.host_path or layer.path
        state = self._root_state()
        root = self.ev.root
        if state is None or root is None or root.fid is None or self.ev.prefix:
            return
        if state.layer.real_path is not None:
            return
        if not self.ctx.can_decode:
            state.layer.verify_note += f"; real path unknown: {self.ctx.decode_reason}"
            return
        orphan = self._locate(root)
        if orphan.kind == "path":
            state.layer.real_path = orphan.root
        elif orphan.kind == "detached":
            self.out.detached[state.label] = orphan.uuid
            if state.fd is not None and state.layer.verified == Verified.UNVERIFIED:
                self._decide(state, Verified.MISMATCH, Reason.FS_DETACHED,
                             ProofMethod.ROOT_HANDLE, Strength.PROVEN)


def _settled(state: LayerState) -> bool:
    """Proven, or consistent with every piece of evidence (so what it hides can be trusted)."""
    if state.proven:
        return True
    return state.layer.verified == Verified.UNVERIFIED and state.layer.proof.reason in (
        Reason.INODE_CONSISTENT.value, Reason.PROBE_MATCH.value)


def _on_fs(state: LayerState, uuid: bytes) -> bool:
    keys = _fs_keys(state)
    return uuid != NULL_UUID and uuid in keys


def _strip(path: str, rel: str) -> str | None:
    """The layer root for an object at ``rel`` whose real path is ``path`` (None if it is not
    at that relative path, e.g. a copied-up file renamed since)."""
    if not rel:
        return path
    suffix = "/" + rel
    if not path.endswith(suffix):
        return None
    return path[: -len(suffix)] or "/"


def _is_whiteout_stat(st: os.stat_result) -> bool:
    """:func:`is_whiteout` for an object already lstat'ed (``lstat_at`` never follows a symlink
    or crosses a mount, so its stat is the one ``is_whiteout`` would take)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _hides(dirfd: int, name: str, userxattr: bool) -> bool:
    """A whiteout: a 0:0 character device, or a file with the overlay.whiteout xattr."""
    if is_whiteout(dirfd, name):
        return True
    fd = lookup(dirfd, name)
    if fd is None:
        return True
    try:
        prefix = "user" if userxattr else "trusted"
        return get_xattr(fd, f"{prefix}.overlay.whiteout") is not None
    finally:
        os.close(fd)


def _names(fd: int) -> list[str]:
    try:
        return list_names(fd, 512)
    except NoAtimeRefused:
        return []
