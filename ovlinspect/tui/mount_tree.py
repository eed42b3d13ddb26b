"""The overlay mounts of one namespace as a lazy Tree: mount → layers → per-layer facts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from ovlinspect.model import Layer, Namespace, Overlay, Severity, Status
from ovlinspect.tui import labels
from ovlinspect.tui.keys import bindings
from ovlinspect.tui.view import ordered_layers

Kind = Literal["mount", "layer", "fact", "hazard", "empty"]
NodeKey = tuple[str, ...]
BATCH = 200


@dataclass(frozen=True, eq=False)
class NodeRef:
    """What a tree node stands for; ``key`` identifies it across rescans."""

    kind: Kind
    key: NodeKey
    ns: Namespace
    overlay: Overlay | None = None
    layer: Layer | None = None
    gone_since: float | None = None
    was: Status | None = None
    worst: Severity | None = None


@dataclass
class _Batch:
    """What the batches of one show_namespace() call need."""

    ns: Namespace
    ns_key: str
    worst_of: Callable[[Overlay], Severity | None]
    expanded: Set[NodeKey]
    cursor: NodeKey | None
    gone: dict[int, float]
    was: dict[int, Status]


def _layer_facts(layer: Layer) -> list[tuple[str, Text | str | None]]:
    facts: list[tuple[str, Text | str | None]] = [
        ("path", layer.path),
        ("host_path", layer.host_path),
        ("real_path", layer.real_path),
    ]
    facts += [("symlink", Text.assemble(labels.safe(s.path), " → ", labels.safe(s.target)))
              for s in layer.symlinks]
    if layer.dev is not None or layer.ino is not None:
        facts.append(("dev/ino", f"{layer.dev or '?'} / {'?' if layer.ino is None else layer.ino}"))
    if layer.fs_type or layer.fs_uuid:
        fs = labels.safe(layer.fs_type or "?")
        if layer.fs_uuid:
            fs.append(f"  uuid {layer.fs_uuid}", style="dim")
        facts.append(("fs", fs))
    if layer.mount_id is not None:
        facts.append(("mount id", str(layer.mount_id)))
    verified = labels.verified(layer.verified)
    if layer.verify_note:
        verified.append("  ")
        verified.append_text(labels.safe(layer.verify_note, style="dim"))
    facts.append(("verified", verified))
    return facts


class MountTree(Tree[NodeRef]):
    """Children are built only when a node is first expanded (big hosts stay responsive)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings("panes"),
        Binding("right", "expand", "Expand", show=False),
        Binding("left", "collapse", "Collapse", show=False),
        Binding("shift+left", "scroll_left", "Scroll left", show=False),
        Binding("shift+right", "scroll_right", "Scroll right", show=False),
    ]
    ICON_NODE = "▶ "
    ICON_NODE_EXPANDED = "▼ "

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("mounts", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._built: set[int] = set()
        self._pending: list[Overlay] = []
        self._fill = 0
        self._batch: _Batch | None = None

    def get_label_width(self, node: TreeNode[NodeRef]) -> int:
        """Cheaper than rendering each label (the tree asks this of every line); mount and
        layer rows are cut to the pane, so they never need a sideways scroll."""
        ref = node.data
        if ref is not None and ref.kind in ("mount", "layer"):
            return min(node.label.cell_len, self._room(node)) + 2
        return node.label.cell_len + (2 if node.allow_expand else 0)

    def _room(self, node: TreeNode[NodeRef]) -> int:
        """The cells a node's label has: the pane less the guides and the toggle icon."""
        depth = _depth(node) - (0 if self.show_root else 1)
        width = self.content_region.width - self.scrollbar_size_vertical  # room for a scrollbar
        return max(20, width - depth * self.guide_depth - 2)

    def render_label(self, node: TreeNode[NodeRef], base_style: Style, style: Style) -> Text:
        """Mount and layer rows are laid out for the pane's width: badge, verdict and codes
        first, the path cut in the middle."""
        ref = node.data
        if ref is not None and ref.overlay is not None and ref.kind in ("mount", "layer"):
            room = self._room(node)
            if ref.kind == "mount":
                label = labels.mount_label(ref.overlay, ref.worst, room,
                                           gone_since=ref.gone_since, before=ref.was)
            else:
                assert ref.layer is not None
                label = labels.layer_label(ref.layer, room)
            node._label = label
        return super().render_label(node, base_style, style)

    def on_resize(self) -> None:
        self._invalidate()

    def show_namespace(self, ns: Namespace, overlays: list[Overlay], ns_key: str,
                       worst_of: Callable[[Overlay], Severity | None],
                       expanded: Set[NodeKey] = frozenset(),
                       cursor: NodeKey | None = None, *,
                       gone: dict[int, float] | None = None,
                       was: dict[int, Status] | None = None) -> None:
        """Replace the tree with ``overlays``, collapsed but for the ``expanded`` keys.

        Mounts are added in growing batches, one per refresh, so thousands of mounts paint at
        once; the cursor goes back to ``cursor`` (or its nearest ancestor) when that appears.
        """
        self.clear()
        self._built.clear()
        self._fill += 1
        if not overlays:
            what = "no overlay mounts match the filter" if ns.overlays else "no overlay mounts"
            self.root.add_leaf(Text(f"({what})", style="dim"),
                               NodeRef("empty", (ns_key, "empty"), ns))
            self._pending = []
            return
        self._pending = list(overlays)
        self._batch = _Batch(ns, ns_key, worst_of, expanded, cursor, gone or {}, was or {})
        self._add_batch(self._fill, BATCH)

    @property
    def filling(self) -> bool:
        """True while batches of mounts are still being added."""
        return bool(self._pending)

    def _add_batch(self, fill: int, size: int) -> None:
        if fill != self._fill:  # a newer show_namespace() took over
            return
        chunk, self._pending = self._pending[:size], self._pending[size:]
        job = self._batch
        assert job is not None
        first = not self.root.children
        added = []
        for overlay in chunk:
            worst = job.worst_of(overlay)
            gone, was = job.gone.get(overlay.mount_id), job.was.get(overlay.mount_id)
            ref = NodeRef("mount", (job.ns_key, str(overlay.mount_id)), job.ns, overlay,
                          gone_since=gone, was=was, worst=worst)
            added.append(self.root.add(labels.mount_label(overlay, worst, gone_since=gone,
                                                          before=was), ref))
        if not self._restore(added, job) and first:
            self._place_cursor(added[0])  # the wanted node may still come in a later batch
        if self._pending:
            self.call_after_refresh(self._add_batch, fill, size * 2)

    def _restore(self, nodes: list[TreeNode[NodeRef]], job: _Batch) -> bool:
        """Re-expand the ``job.expanded`` keys among ``nodes``; True if the cursor went back."""
        stack = list(nodes)
        found: dict[NodeKey, TreeNode[NodeRef]] = {}
        while stack:
            node = stack.pop()
            if node.data is None:
                continue
            found[node.data.key] = node
            if node.data.key in job.expanded:
                self.populate(node)
                node.expand()
                stack.extend(node.children)
        if job.cursor is None:
            return False
        for length in range(len(job.cursor), 0, -1):
            target = found.get(job.cursor[:length])
            if target is not None:
                self._place_cursor(target)
                job.cursor = None
                return True
        return False

    def select_key(self, key: NodeKey) -> None:
        """Put the cursor on the node keyed ``key``, now or when its batch arrives."""
        for node in self.walk():
            if node.data is not None and node.data.key == key:
                self._place_cursor(node)
                return
        if self._pending and self._batch is not None:
            self._batch.cursor = key

    def _place_cursor(self, node: TreeNode[NodeRef]) -> None:
        _ = self.last_line  # lay out the lines so the node knows its line
        self.move_cursor(node)
        # and again once the tree has its new size: a rebuilt tree may not know it yet
        self.call_after_refresh(self._scroll_node_into_view, node)

    def _scroll_node_into_view(self, node: TreeNode[NodeRef]) -> None:
        with contextlib.suppress(UnknownNodeID):  # a newer show_namespace() replaced it
            if self.get_node_by_id(node.id) is node and node.line >= 0:
                self.scroll_to_node(node, animate=False)

    def populate(self, node: TreeNode[NodeRef]) -> None:
        """Build ``node``'s children once: a mount's hazards and layers, a layer's facts."""
        ref = node.data
        if ref is None or node.id in self._built or ref.overlay is None:
            return
        self._built.add(node.id)
        overlay = ref.overlay
        if ref.kind == "mount":
            for i, hazard in enumerate(overlay.hazards):
                node.add_leaf(labels.hazard_label(hazard),
                              NodeRef("hazard", (*ref.key, f"hazard{i}"), ref.ns, overlay))
            for layer in ordered_layers(overlay):
                node.add(labels.layer_label(layer),
                         NodeRef("layer", (*ref.key, layer.label), ref.ns, overlay, layer))
        elif ref.kind == "layer" and ref.layer is not None:
            layer = ref.layer
            for i, hazard in enumerate(layer.hazards):
                node.add_leaf(labels.hazard_label(hazard),
                              NodeRef("hazard", (*ref.key, f"hazard{i}"), ref.ns, overlay, layer))
            seen: dict[str, int] = {}
            for name, value in _layer_facts(layer):
                seen[name] = seen.get(name, 0) + 1
                node.add_leaf(labels.fact_label(name, value),
                              NodeRef("fact", (*ref.key, f"{name}{seen[name]}"), ref.ns,
                                      overlay, layer))

    def _toggle_node(self, node: TreeNode[NodeRef]) -> None:
        self.populate(node)  # build before expanding, so no empty frame is drawn
        super()._toggle_node(node)

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        self.populate(event.node)

    def action_expand(self) -> None:
        """Right arrow: expand the node, or step into its first child."""
        node = self.cursor_node
        if node is None or not node.allow_expand:
            return
        if node.is_expanded:
            if node.children:
                self.move_cursor(node.children[0])
        else:
            self.populate(node)
            node.expand()

    def action_first(self) -> None:
        """Home / g: the first line, scrolled into view."""
        if self.last_line >= 0:
            self.move_cursor_to_line(0)
            self.scroll_home(animate=False)

    def action_last(self) -> None:
        """End / G: the last line, scrolled into view."""
        if self.last_line >= 0:
            self.move_cursor_to_line(self.last_line)
            self.scroll_to_line(self.last_line, animate=False)

    def action_collapse(self) -> None:
        """Left arrow: collapse the node, or step out to its parent."""
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def walk(self) -> list[TreeNode[NodeRef]]:
        """Every node that has been built, depth first."""
        out: list[TreeNode[NodeRef]] = []
        stack = list(reversed(self.root.children))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    def expanded_keys(self) -> set[NodeKey]:
        """Keys of the expanded nodes."""
        return {n.data.key for n in self.walk() if n.is_expanded and n.data is not None}


def _depth(node: TreeNode[NodeRef]) -> int:
    depth = 0
    while node.parent is not None:
        depth, node = depth + 1, node.parent
    return depth
