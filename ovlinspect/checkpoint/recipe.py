"""The new-mount-API steps that rebuild an overlay, and replaying them.

``fsopen("overlay")``, one ``fsconfig`` per option, one ``lowerdir+=`` / ``datadir+=`` per layer
(taken literally by the kernel: no escape rules, no one-page limit), ``upperdir``/``workdir``,
``FSCONFIG_CMD_CREATE``, ``fsmount`` with the mount's attributes, ``move_mount`` to the target.

``FSCONFIG_SET_STRING`` values are capped at 255 bytes: a longer path is given as
``FSCONFIG_SET_FD`` of the directory opened ``O_PATH`` (overlay: 6.13+).  ``upperdir=`` and
``workdir=`` strings are backslash-unescaped by the kernel, so their backslashes are doubled (a
string, not an fd: mountinfo prints an fd's real backslash exactly like a typed escape, so a
reader could not tell them apart).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ovlinspect.checkpoint import model as m
from ovlinspect.kernel import mountapi as api

STRING_MAX = 255
MOUNT_ATTRS = {"ro": 0x1, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "noatime": 0x10,
               "relatime": 0x0, "strictatime": 0x20, "nodiratime": 0x80, "nosymfollow": 0x200000}
SET_STRING, SET_FLAG, SET_FD = "FSCONFIG_SET_STRING", "FSCONFIG_SET_FLAG", "FSCONFIG_SET_FD"
CMD_CREATE = "FSCONFIG_CMD_CREATE"


def _nbytes(text: str) -> int:
    return len(os.fsencode(text))


def _path_step(key: str, label: str, path: str) -> m.Step:
    """``lowerdir+``/``datadir+`` strings are literal; ``upperdir``/``workdir`` strings are
    backslash-unescaped by the kernel, so their backslashes are doubled.  Over 255 bytes, the
    directory goes by fd (the step's ``value`` is then the path the restorer opens)."""
    value = path if key in ("lowerdir+", "datadir+") else path.replace("\\", "\\\\")
    if _nbytes(value) <= STRING_MAX:
        return m.Step("fsconfig", SET_STRING, key, value, label)
    return m.Step("fsconfig", SET_FD, key, path, label)


def option_steps(opts: m.OverlayOptions, *, read_only_rebuild: bool = False) -> list[m.Step]:
    """One fsconfig per option shown by the mount.

    ``read_only_rebuild`` drops what only an upper layer means (index, nfs_export, volatile,
    fsync, uuid): :mod:`ovlinspect.checkpoint.verify` stacks the upper as the top lower.
    """
    steps: list[m.Step] = []
    skip = {"index", "nfs_export", "volatile", "fsync", "uuid"} if read_only_rebuild else set()
    for name in m.BOOL_OPTIONS:
        value = getattr(opts, name)
        if value is not None and name not in skip:
            steps.append(m.Step("fsconfig", SET_STRING, name, "on" if value else "off"))
    for name in m.STRING_OPTIONS:
        value = getattr(opts, name)
        if value is not None and name not in skip:
            steps.append(m.Step("fsconfig", SET_STRING, name, value))
    if opts.volatile and opts.fsync is None and "volatile" not in skip:
        steps.append(m.Step("fsconfig", SET_FLAG, "volatile"))
    for name in ("userxattr", "default_permissions"):
        if getattr(opts, name):
            steps.append(m.Step("fsconfig", SET_FLAG, name))
    if opts.sb_readonly or read_only_rebuild:
        steps.append(m.Step("fsconfig", SET_FLAG, "ro"))
    return steps


def build_recipe(ov: m.DumpOverlay, paths: Mapping[str, str], *,
                 read_only_rebuild: bool = False) -> list[m.Step]:
    """The steps for ``ov`` with each layer at ``paths[label]``."""
    steps = [m.Step("fsopen", value="overlay")]
    steps += option_steps(ov.options, read_only_rebuild=read_only_rebuild)
    lowers = [item for item in ov.layers if item.role == "lower"]
    upper = ov.layer("upper")
    if read_only_rebuild and upper is not None:
        lowers = [upper, *lowers]
    for item in lowers:
        steps.append(_path_step("lowerdir+", item.label, paths[item.label]))
    for item in ov.layers:
        if item.role == "data":
            steps.append(_path_step("datadir+", item.label, paths[item.label]))
    if not read_only_rebuild:
        for role, key in (("upper", "upperdir"), ("work", "workdir")):
            item = ov.layer(role)
            if item is not None:
                steps.append(_path_step(key, item.label, paths[item.label]))
    steps.append(m.Step("fsconfig", CMD_CREATE))
    attrs = list(ov.mount_attrs)
    if read_only_rebuild and "ro" not in attrs:
        attrs.append("ro")
    steps.append(m.Step("fsmount", attrs=attrs))
    steps.append(m.Step("move_mount"))
    return steps


class ReplayError(OSError):
    """A recipe step failed; ``step`` is its index."""

    def __init__(self, step: int, exc: OSError) -> None:
        super().__init__(exc.errno, f"step {step}: {exc.strerror or exc}")
        self.step = step


def replay(steps: list[m.Step], target: str, fds: Mapping[str, int]) -> None:
    """Run ``steps``, attaching the new overlay at ``target`` (in the caller's namespace).

    ``fds`` holds an O_PATH fd per layer label, opened and checked by the caller; it is what
    FSCONFIG_SET_FD passes.
    """
    mnt = _run(steps, fds, target)
    if mnt >= 0:
        os.close(mnt)


def replay_detached(steps: list[m.Step], fds: Mapping[str, int]) -> int:
    """Run ``steps`` up to ``fsmount`` and return the detached mount's fd (owned by the caller):
    the overlay is attached nowhere, and goes away when the last fd on it is closed."""
    mnt = _run([s for s in steps if s.call != "move_mount"], fds, None)
    if mnt < 0:
        raise ReplayError(len(steps), OSError(22, "the recipe has no fsmount step"))
    return mnt


def by_fd(steps: list[m.Step]) -> list[m.Step]:
    """The same steps with every layer path given as FSCONFIG_SET_FD (the caller's checked fds),
    so nothing is resolved again between the check and the mount."""
    return [m.Step(s.call, SET_FD, s.key, s.value, s.layer, list(s.attrs))
            if s.call == "fsconfig" and s.layer is not None else s for s in steps]


def _run(steps: list[m.Step], fds: Mapping[str, int], target: str | None) -> int:
    ctx = mnt = -1
    try:
        for number, step in enumerate(steps):
            try:
                if step.call == "fsopen":
                    ctx = api.fsopen(step.value or "overlay")
                elif step.call == "fsconfig":
                    _fsconfig(ctx, step, fds)
                elif step.call == "fsmount":
                    flags = 0
                    for attr in step.attrs:
                        flags |= MOUNT_ATTRS.get(attr, 0)
                    mnt = api.fsmount(ctx, attr_flags=flags)
                elif step.call == "move_mount" and target is not None:
                    api.move_mount(mnt, "", api.AT_FDCWD, target)
                else:
                    raise OSError(22, f"unknown call {step.call!r}")
            except OSError as exc:
                raise ReplayError(number, exc) from None
    except BaseException:
        if mnt >= 0:
            os.close(mnt)
        raise
    finally:
        if ctx >= 0:
            os.close(ctx)
    return mnt


def _fsconfig(ctx: int, step: m.Step, fds: Mapping[str, int]) -> None:
    key = step.key or ""
    if step.cmd == CMD_CREATE:
        api.fsconfig_create(ctx)
    elif step.cmd == SET_FLAG:
        api.fsconfig_set_flag(ctx, key)
    elif step.cmd == SET_FD:
        api.fsconfig_set_fd(ctx, key, fds[step.layer or ""])
    elif step.cmd == SET_STRING:
        api.fsconfig_set_string(ctx, key, step.value or "")
    else:
        raise OSError(22, f"unknown fsconfig command {step.cmd!r}")
