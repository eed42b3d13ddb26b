"""The lab's overlay scenarios, each a small, realistic way for mount options to mislead.

Runs inside the holder's private mount namespace, where ``/tmp`` is the holder's own tmpfs.
Every overlay is mounted at ``/tmp/ovlinspect-demo/<n>-<name>``; its layers live under
``/tmp/ovlinspect-demo/.layers/<name>/``.  Every layer holds ``only-<tag>.txt``, a name no other
layer of that overlay has, so the scanner can probe which layer really serves it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from ovlinspect.kernel import mountapi as m

BASE = "/tmp/ovlinspect-demo"
LAYERS = f"{BASE}/.layers"


class LowerLayer(TypedDict):
    """A lower or data-only layer as the options declare it, in order."""

    role: str
    declared: str


class ScenarioInfo(TypedDict):
    """What one scenario built and what the scanner is expected to find on it.

    ``expect`` lists hazard codes that must be reported on the overlay; ``expect_layer`` maps some
    of them to the layer label they must be reported on.  An empty ``expect`` means: no hazard of
    severity warning or worse.  ``pid`` is a process whose mount namespace shows the overlay.
    """

    name: str
    mount_point: str
    expect: list[str]
    expect_layer: dict[str, str]
    lower_layers: list[LowerLayer]
    pid: int
    note: str


class Skipped(TypedDict):
    """A scenario that could not be built, and why."""

    name: str
    reason: str


class Inherited(TypedDict):
    """An overlay the lab's namespace inherited from its creator and could not detach, and why."""

    mount_point: str
    fs_type: str
    reason: str


@dataclass
class Context:
    """What every builder needs: who shows the mounts and which overlay options are forced."""

    pid: int
    rootless: bool
    scenarios: list[ScenarioInfo] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def options(self, *parts: str) -> str:
        """Legacy overlay option string; adds ``userxattr`` inside a user namespace."""
        return ",".join([*parts, *(["userxattr"] if self.rootless else [])])

    def flags(self) -> list[str]:
        """Valueless fsconfig flags forced by the namespace (``userxattr`` when rootless)."""
        return ["userxattr"] if self.rootless else []


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def fill_layer(path: str, tag: str) -> str:
    """Create a layer dir with a shared name, a name unique to it, and a subdirectory."""
    os.makedirs(os.path.join(path, "dir"), exist_ok=True)
    _write(os.path.join(path, "shared.txt"), f"shared.txt as seen in {tag}\n")
    _write(os.path.join(path, f"only-{tag}.txt"), f"only in {tag}\n")
    _write(os.path.join(path, "dir", f"{tag}.txt"), f"{tag}\n")
    return path


def _dirs(name: str, lowers: list[str], upper: bool = True) -> tuple[str, list[str], str, str]:
    """Layer dirs for scenario ``name``: its folder, filled lowers, filled upper, empty work."""
    root = os.path.join(LAYERS, name)
    paths = [fill_layer(os.path.join(root, lower), f"lower{i}") for i, lower in enumerate(lowers)]
    up = os.path.join(root, "upper")
    work = os.path.join(root, "work")
    if upper:
        fill_layer(up, "upper")
        os.makedirs(work, exist_ok=True)
    return root, paths, up, work


def _target(dirname: str) -> str:
    path = os.path.join(BASE, dirname)
    os.makedirs(path, exist_ok=True)
    return path


def make_info(ctx: Context, name: str, mount_point: str, lowers: list[str], expect: list[str],
              expect_layer: dict[str, str] | None = None, roles: list[str] | None = None,
              pid: int | None = None, note: str = "") -> ScenarioInfo:
    """A :class:`ScenarioInfo`; ``roles`` defaults to all ``lower``, ``pid`` to the holder."""
    roles = roles or ["lower"] * len(lowers)
    return ScenarioInfo(
        name=name, mount_point=mount_point, expect=expect, expect_layer=expect_layer or {},
        lower_layers=[LowerLayer(role=r, declared=d) for r, d in zip(roles, lowers, strict=True)],
        pid=ctx.pid if pid is None else pid, note=note)


def healthy(ctx: Context) -> ScenarioInfo:
    """Absolute paths, three lowers, upper and work, all on tmpfs: nothing to report."""
    _, lowers, up, work = _dirs("healthy", ["l0", "l1", "l2"])
    target = _target("1-healthy")
    m.mount("overlay", target, "overlay", 0,
            ctx.options(f"lowerdir={':'.join(lowers)}", f"upperdir={up}", f"workdir={work}"))
    return make_info(ctx, "healthy", target, lowers, [])


def relative(ctx: Context) -> ScenarioInfo:
    """Mounted from a chdir'ed cwd with relative paths, which the kernel does not record."""
    root, _, _, _ = _dirs("relative", ["l1", "l2"])
    target = _target("2-relative")
    old = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        os.chdir(root)
        m.mount("overlay", target, "overlay", 0,
                ctx.options("lowerdir=l1:l2", "upperdir=upper", "workdir=work"))
    finally:
        os.fchdir(old)
        os.close(old)
    return make_info(ctx, "relative", target, ["l1", "l2"], ["relative-path"],
                     note="mounted after chdir to " + root)


def detached_lower(ctx: Context) -> ScenarioInfo:
    """lower[1] is its own tmpfs, lazily unmounted after the overlay was mounted."""
    root = os.path.join(LAYERS, "detached")
    l1 = os.path.join(root, "l1")
    os.makedirs(l1, exist_ok=True)
    m.mount("demo-detached-lower", l1, "tmpfs", 0, "mode=755")
    try:
        _, lowers, up, work = _dirs("detached", ["l0", "l1", "l2"])
        target = _target("3-detached-lower")
        m.mount("overlay", target, "overlay", 0,
                ctx.options(f"lowerdir={':'.join(lowers)}", f"upperdir={up}", f"workdir={work}"))
    finally:
        m.umount(l1, m.MNT_DETACH)
    if ctx.rootless:
        # Without overlay handles (a user namespace's overlay has none), merged names and inode
        # numbers show that lower[1]'s path is not the layer, but nothing can name the
        # filesystem the layer is really on, so "mounted nowhere" cannot be shown.
        return make_info(ctx, "detached-lower", target, lowers, ["stale-path"],
                         {"stale-path": "lower[1]"},
                         note=f"the tmpfs that was {l1} is unmounted; only the overlay holds it "
                         "(rootless: no handles, so only the stale path can be shown)")
    return make_info(ctx, "detached-lower", target, lowers, ["source-detached"],
                     {"source-detached": "lower[1]"},
                     note=f"the tmpfs that was {l1} is unmounted; only the overlay holds it")


def shadowed_upper(ctx: Context) -> ScenarioInfo:
    """After mounting, a fresh tmpfs is mounted over the upper dir's path."""
    _, lowers, up, work = _dirs("shadowed", ["l0", "l1"])
    target = _target("4-shadowed-upper")
    m.mount("overlay", target, "overlay", 0,
            ctx.options(f"lowerdir={':'.join(lowers)}", f"upperdir={up}", f"workdir={work}"))
    m.mount("demo-shadow", up, "tmpfs", 0, "mode=755")
    _write(os.path.join(up, "not-the-upper.txt"), "this tmpfs hides the real upper dir\n")
    return make_info(ctx, "shadowed-upper", target, lowers, ["stale-path"],
                     {"stale-path": "upper"}, note=f"a tmpfs is mounted over {up}")


def new_api(ctx: Context) -> ScenarioInfo:
    """fsopen/fsconfig with ``lowerdir+=`` twice and ``datadir+=`` once; names hold , : and space.

    As root, ``metacopy=on`` and a metacopy file in lower[1] redirect into the data-only layer, as
    composefs does.  userxattr refuses metacopy=on, so rootless the data layer is merely declared.
    """
    root, lowers, up, work = _dirs("new-api", ["low,er:1 a", "low,er:2 b"])
    data = fill_layer(os.path.join(root, "data,only:3 c"), "data0")
    target = _target("6-new-api")
    strings: dict[str, str] = {}
    note = "data-only layer declared but unused: userxattr refuses metacopy=on"
    if not ctx.rootless:
        blob = b"served from the data-only layer through a metacopy redirect\n"
        with open(os.path.join(data, "blob"), "wb") as handle:
            handle.write(blob)
        meta = os.path.join(lowers[1], "from-data.txt")
        with open(meta, "wb") as handle:
            handle.truncate(len(blob))
        os.setxattr(meta, "trusted.overlay.metacopy", b"")
        os.setxattr(meta, "trusted.overlay.redirect", b"/blob")
        strings["metacopy"] = "on"
        note = "from-data.txt is a metacopy file whose data is /blob in the data-only layer"
    m.overlay_new_api(target, lowers=lowers, datas=[data], upper=up, work=work, strings=strings,
                      flags=ctx.flags())
    return make_info(ctx, "new-api", target, [*lowers, data], [],
                     roles=["lower", "lower", "data"], note=note)


def _short_id(seed: str) -> str:
    return base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()[:26]


def _long_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def docker(ctx: Context) -> ScenarioInfo:
    """Docker's overlay2 layout: ``l/<short>`` symlinks to ``../<id>/diff``, relative paths,
    mounted from the storage root at ``<root>/<id>/merged`` as Docker does."""
    root = os.path.join(BASE, "7-docker")
    os.makedirs(os.path.join(root, "l"), exist_ok=True)
    shorts = []
    for i in range(2):
        long_id, short = _long_id(f"demo-layer-{i}"), _short_id(f"demo-layer-{i}")
        fill_layer(os.path.join(root, long_id, "diff"), f"lower{i}")
        _write(os.path.join(root, long_id, "link"), short)
        os.symlink(f"../{long_id}/diff", os.path.join(root, "l", short))
        shorts.append(f"l/{short}")
    upper_id = _long_id("demo-container-layer")
    fill_layer(os.path.join(root, upper_id, "diff"), "upper")
    os.makedirs(os.path.join(root, upper_id, "work"), exist_ok=True)
    target = os.path.join(root, upper_id, "merged")
    os.makedirs(target, exist_ok=True)
    old = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        os.chdir(root)
        m.mount("overlay", target, "overlay", 0,
                ctx.options(f"lowerdir={':'.join(shorts)}", f"upperdir={upper_id}/diff",
                            f"workdir={upper_id}/work"))
    finally:
        os.fchdir(old)
        os.close(old)
    return make_info(ctx, "docker", target, shorts, ["symlink", "relative-path"],
                     note="mounted after chdir to " + root)


def volatile(ctx: Context) -> ScenarioInfo:
    """An upper mounted with ``volatile``: no syncs, not crash-safe."""
    _, lowers, up, work = _dirs("volatile", ["l0"])
    target = _target("8-volatile")
    m.mount("overlay", target, "overlay", 0,
            ctx.options(f"lowerdir={lowers[0]}", f"upperdir={up}", f"workdir={work}", "volatile"))
    return make_info(ctx, "volatile", target, lowers, ["volatile"])


def hostile(ctx: Context) -> ScenarioInfo:
    """Markup, an emoji code and spaces in the mount point and a layer name: renderers beware."""
    _, lowers, up, work = _dirs("hostile", ["l0 [red]x[/]", "l1"])
    target = _target("9-hostile [bold]:smile: x")
    m.mount("overlay", target, "overlay", 0,
            ctx.options(f"lowerdir={':'.join(lowers)}", f"upperdir={up}", f"workdir={work}"))
    return make_info(ctx, "hostile", target, lowers, [])


BUILDERS: list[Callable[[Context], ScenarioInfo]] = [
    healthy, relative, detached_lower, shadowed_upper, new_api, docker, volatile, hostile,
]

ORDER = ["healthy", "relative", "detached-lower", "shadowed-upper", "container", "new-api",
         "docker", "volatile", "hostile"]
"""Scenario names in the order of their numbered mount points."""


def build(ctx: Context, builder: Callable[[Context], ScenarioInfo], name: str) -> None:
    """Run one builder; an OSError makes the scenario skipped, not the lab failed."""
    try:
        ctx.scenarios.append(builder(ctx))
    except OSError as exc:
        ctx.skipped.append(Skipped(name=name, reason=exc.strerror or str(exc)))


def build_all(ctx: Context) -> None:
    """Build every scenario except the container (see :mod:`ovlinspect.lab.container`)."""
    os.makedirs(LAYERS, exist_ok=True)
    for builder in BUILDERS:
        build(ctx, builder, builder.__name__.replace("_", "-"))


def sort(ctx: Context) -> None:
    """Put built and skipped scenarios in the order of their numbered mount points."""
    ctx.scenarios.sort(key=lambda s: ORDER.index(s["name"]))
    ctx.skipped.sort(key=lambda s: ORDER.index(s["name"]))
