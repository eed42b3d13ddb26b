"""The catalogue of hazard codes: severity, what each means and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

from ovlinspect.model import Hazard, HazardCode, Severity


@dataclass(frozen=True)
class HazardKind:
    """A hazard code's fixed facts; the message of each finding is specific to it."""

    code: HazardCode
    severity: Severity
    meaning: str
    hint: str


CATALOGUE: dict[HazardCode, HazardKind] = {
    k.code: k
    for k in (
        HazardKind(
            HazardCode("source-detached"),
            Severity.ERROR,
            "The layer's filesystem is mounted nowhere visible: its source was unmounted and only "
            "the overlay keeps it alive.",
            "Replaying the options cannot work; the data is reachable only through the overlay. "
            "Remount the source, or checkpoint the files through the overlay itself.",
        ),
        HazardKind(
            HazardCode("stale-path"),
            Severity.ERROR,
            "The declared path exists but is not the layer in use: something was mounted over it, "
            "the source was unmounted, or the directory was replaced.",
            "Do not trust this path: use real_path (decoded from the overlay's own file handle). "
            "Look for a mount that covers the path (findmnt -T PATH).",
        ),
        HazardKind(
            HazardCode("not-found"),
            Severity.ERROR,
            "The declared path resolves nowhere, neither in the process's view nor outside it.",
            "The directory was removed or renamed, or lives in a namespace that no process shows. "
            "real_path, when present, says where the layer really is.",
        ),
        HazardKind(
            HazardCode("fd-path"),
            Severity.WARNING,
            "The layer was given as a file descriptor (/proc/self/fd/N) or by a detached mount "
            "that "
            "prints as '/'; the string names nothing a restore can open.",
            "Use real_path (decoded from the file handle) to find the directory.",
        ),
        HazardKind(
            HazardCode("foreign-path"),
            Severity.INFO,
            "The path does not exist in the process's own mount namespace, only outside it "
            "(as with "
            "container roots, whose options name host paths).",
            "Normal for container roots. Use host_path (resolved from the host); a restore inside "
            "the container's namespace must not replay the string.",
        ),
        HazardKind(
            HazardCode("relative-path"),
            Severity.INFO,
            "The option path is relative to a working directory that the kernel did not record.",
            "Harmless when the overlay's own handle proves the cwd (the verdict says so); a "
            "restore must use the proven path, never replay the string (ovlinspect dump does).",
        ),
        HazardKind(
            HazardCode("options-near-limit"),
            Severity.WARNING,
            "The legacy options string is at or over the 4096-byte limit of mount(2) data, so a "
            "replay with mount(2) fails.",
            "Replay with the new mount API (fsconfig lowerdir+=) instead of mount(2).",
        ),
        HazardKind(
            HazardCode("volatile"),
            Severity.WARNING,
            "The upper layer is volatile: writes are not synced, and after a crash the upper and "
            "work dirs must be thrown away.",
            "Expected for scratch containers; never for data that must survive a crash.",
        ),
        HazardKind(
            HazardCode("no-layer-info"),
            Severity.INFO,
            "fuse-overlayfs mounts carry no layer paths in mountinfo.",
            "Read the layers from the fuse-overlayfs command line or the runtime's state.",
        ),
        HazardKind(
            HazardCode("symlink"),
            Severity.INFO,
            "The path goes through symlinks (e.g. Docker's l/ short names).",
            "The symlink chain is recorded; a restore must see the same links.",
        ),
        HazardKind(
            HazardCode("shadowed-mount"),
            Severity.WARNING,
            "Another mount covers this overlay's mount point, so the overlay is not reachable by "
            "its path.",
            "Inspect it through a process whose cwd or root is inside it, or unmount the cover.",
        ),
        HazardKind(
            HazardCode("too-many-lowers"),
            Severity.ERROR,
            "The options list more lower layers than the kernel allows (500): the line cannot "
            "describe a real overlay mount.",
            "The mountinfo text was corrupted, cut or made up; only the first 500 lowers were "
            "analysed.",
        ),
        HazardKind(
            HazardCode("hidden-submount"),
            Severity.WARNING,
            "A mount sits below a layer path. The overlay does not see it (overlayfs does not "
            "follow mounts inside a layer), though users often expect it to.",
            "Put the data into the layer directory itself, or mount it on the overlay's merged "
            "tree instead.",
        ),
        HazardKind(
            HazardCode("shared-upper"),
            Severity.WARNING,
            "Two overlay mounts use the same upper directory; the kernel only warns about this, "
            "and the result of writes through both is undefined.",
            "Give each overlay its own upper and work directories (index=on makes the kernel "
            "refuse a second mount).",
        ),
        HazardKind(
            HazardCode("no-handles"),
            Severity.INFO,
            "The overlay gives no overlay file handles, so no layer can be proven by handle; "
            "the weaker inode method is used instead.",
            "Expected for rootless overlays and lowers that cannot export handles (squashfs "
            "-no-exports, a non-nfs_export overlay as a lower).",
        ),
        HazardKind(
            HazardCode("unreadable"),
            Severity.INFO,
            "The layer could not be inspected (permission, or the process vanished).",
            "Run as root, or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.",
        ),
    )
}


def hazard(code: HazardCode | str, layer: str | None, message: str) -> Hazard:
    """A finding of the catalogued kind ``code`` on ``layer`` (None for the whole mount)."""
    kind = CATALOGUE[HazardCode(code)]
    return Hazard(code=kind.code, severity=kind.severity, layer=layer, message=message,
                  hint=kind.hint)
