"""The overlay mounts of one namespace as a lazy Tree: mount → layers → per-layer facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ovlinspect.model import Layer, Namespace, Overlay
from ovlinspect.tui import labels
from ovlinspect.tui.view import ordered_layers

Kind = Literal["mount", "layer", "fact", "hazard", "empty"]
NodeKey = tuple[str, ...]


@dataclass(frozen=True, eq=False)
class NodeRef:
    """What a tree node stands for; ``key`` identifies it across rescans."""

    kind: Kind
    key: NodeKey
    ns: Namespace
    overlay: Overlay | None = None
    layer: Layer | None = None


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
        Binding("right", "expand_or_child", "Expand", show=False),
        Binding("left", "collapse_or_parent", "Collapse", show=False),
    ]
    ICON_NODE = "▶ "
    ICON_NODE_EXPANDED = "▼ "

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("mounts", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._built: set[int] = set()

    def get_label_width(self, node: TreeNode[NodeRef]) -> int:
        """Cheaper than rendering each label (the tree asks this of every line)."""
        return node._label.cell_len + (2 if node.allow_expand else 0)

    def show_namespace(self, ns: Namespace, overlays: list[Overlay], ns_key: str) -> None:
        """Replace the tree with ``overlays`` (collapsed; children are built on expand)."""
        self.clear()
        self._built.clear()
        if not overlays:
            what = "no overlay mounts match the filter" if ns.overlays else "no overlay mounts"
            self.root.add_leaf(Text(f"({what})", style="dim"),
                               NodeRef("empty", (ns_key, "empty"), ns))
            return
        for overlay in overlays:
            self.root.add(labels.mount_label(overlay),
                          NodeRef("mount", (ns_key, str(overlay.mount_id)), ns, overlay))

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

    def action_expand_or_child(self) -> None:
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

    def action_collapse_or_parent(self) -> None:
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

    def restore(self, expanded: set[NodeKey], cursor: NodeKey | None) -> None:
        """Re-expand the nodes of ``expanded`` and put the cursor back on ``cursor``.

        A cursor key that no longer exists falls back to its nearest surviving ancestor.
        """
        if expanded:
            stack = list(self.root.children)
            while stack:
                node = stack.pop()
                if node.data is not None and node.data.key in expanded:
                    self.populate(node)
                    node.expand()
                    stack.extend(node.children)
        if cursor is None:
            return
        by_key = {n.data.key: n for n in self.walk() if n.data is not None}
        for length in range(len(cursor), 0, -1):
            target = by_key.get(cursor[:length])
            if target is not None:
                _ = self.last_line  # lay out the lines so the node knows its line
                self.move_cursor(target)
                return
