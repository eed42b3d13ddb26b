"""Stable reason codes for layer verdicts (``proof.reason``), next to the prose note.

Scripts and tests match these codes, never the note.  ``FINAL`` holds the reasons that say the
kernel offers no further evidence: a layer left ``unverified`` for one of them does not keep its
overlay from being ``ok``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a layer got its verdict."""

    ROOT_HANDLE_MATCH = "root-handle-match"
    ROOT_HANDLE_DIFFERS = "root-handle-differs"
    PROBE_MATCH = "probe-match"
    PROBE_DIFFERS = "probe-differs"
    ELIMINATION = "elimination"
    NAME_ABSENT = "name-absent"
    FS_DETACHED = "fs-detached"
    INDEX_XATTR_MATCH = "index-xattr-match"
    INDEX_XATTR_DIFFERS = "index-xattr-differs"
    WORK_SAME_FS = "work-same-fs"
    WORK_OTHER_FS = "work-other-fs"
    INODE_CONSISTENT = "inode-consistent"
    INODE_DIFFERS = "inode-differs"
    DATA_ONLY = "data-only"
    COVERED = "covered"
    EMPTY = "empty"
    AMBIGUOUS = "ambiguous"
    NOTHING_COMPARABLE = "nothing-comparable"
    SELF_COVERED = "self-covered"
    WORK_COVERED = "work-covered"
    HIGHER_UNPROVEN = "higher-unproven"
    NO_OVERLAY_ROOT = "no-overlay-root"
    NO_VIEW = "no-view"
    NOT_RESOLVED = "not-resolved"
    PATH_UNREADABLE = "path-unreadable"
    CWD_UNKNOWN = "cwd-unknown"
    NO_DECODE_PRIVILEGE = "no-decode-privilege"
    NOATIME_REFUSED = "noatime-refused"
    FS_NO_HANDLE = "fs-no-handle"
    OFFLINE = "offline"
    NOT_CHECKED = "not-checked"


MEANING: dict[Reason, str] = {
    Reason.ROOT_HANDLE_MATCH: "the overlay root's handle names this directory",
    Reason.ROOT_HANDLE_DIFFERS: "the overlay root's handle names another directory",
    Reason.PROBE_MATCH: "an object served by the merged tree is this layer's own object",
    Reason.PROBE_DIFFERS: "names only this path holds are served by other objects",
    Reason.ELIMINATION: "merged objects come from a directory that no other layer is",
    Reason.NAME_ABSENT: "names this path holds, that no higher layer hides, are missing from the "
    "merged tree",
    Reason.FS_DETACHED: "merged objects come from a filesystem mounted nowhere visible",
    Reason.INDEX_XATTR_MATCH: "trusted.overlay.upper on work/index names the upper root",
    Reason.INDEX_XATTR_DIFFERS: "trusted.overlay.upper on work/index names another upper",
    Reason.WORK_SAME_FS: "on the upper's filesystem; no workdir identity without index=on",
    Reason.WORK_OTHER_FS: "not on the real upper's filesystem (the kernel requires it)",
    Reason.INODE_CONSISTENT: "merged inode numbers agree with this directory (no handles)",
    Reason.INODE_DIFFERS: "merged inode numbers disagree with this directory (no handles)",
    Reason.DATA_ONLY: "data-only layers are reached only through metacopy redirects",
    Reason.COVERED: "every name here is also in a higher layer: no object to probe",
    Reason.EMPTY: "the directory is empty: no object to probe",
    Reason.AMBIGUOUS: "the evidence fits more than one declared layer",
    Reason.NOTHING_COMPARABLE: "no merged object could be compared with this layer's",
    Reason.SELF_COVERED: "the path is covered by the overlay itself; no merged object decoded "
    "to it",
    Reason.WORK_COVERED: "the workdir is covered by the overlay itself, and has no identity "
    "without index=on",
    Reason.HIGHER_UNPROVEN: "probes resolve elsewhere, but a higher layer is unproven",
    Reason.NO_OVERLAY_ROOT: "the overlay's root is unreachable (covered), so nothing to probe",
    Reason.NO_VIEW: "the process's view could not be opened",
    Reason.NOT_RESOLVED: "the declared path resolves nowhere",
    Reason.PATH_UNREADABLE: "the declared path could not be followed (permission, a symlink "
    "loop, a symlink that cannot be read without changing its atime): where it leads is "
    "unknown, so it is neither proven nor disproved",
    Reason.CWD_UNKNOWN: "a relative path found under none of the cwds the mounter may have had: "
    "the cwd it was typed in is unknown, so the path is neither proven nor disproved",
    Reason.NO_DECODE_PRIVILEGE: "decoding handles needs CAP_DAC_READ_SEARCH",
    Reason.NOATIME_REFUSED: "reading the layer would change its atime (O_NOATIME refused)",
    Reason.FS_NO_HANDLE: "the layer's filesystem gives no file handle",
    Reason.OFFLINE: "offline analysis of a saved mountinfo: nothing to resolve",
    Reason.NOT_CHECKED: "not checked",
}

FINAL = frozenset({
    Reason.WORK_SAME_FS, Reason.WORK_COVERED, Reason.INODE_CONSISTENT, Reason.DATA_ONLY,
    Reason.COVERED, Reason.EMPTY,
})
"""Unverified for these reasons is the most the kernel allows: not a gap in the inspection."""
