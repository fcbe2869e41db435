"""Pictures of a process tree: indented text, Mermaid flowcharts and Graphviz DOT.

The two diagram formats share one layout: every step becomes a vertex, every
block and sub-process a cluster, and edges follow the execution order (a
sequential block chains its children, a concurrent one fans out and back in).
A run's picture colours each step by its state (``states``: path to state name).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .nodes import ExecutionMode, Node, ProcessNode, TaskNode


def as_text(root: ProcessNode) -> str:
    """One line per node, indented with box-drawing characters."""
    lines = [_text_label(root)]
    lines.extend(_text_children(root, ""))
    return "\n".join(lines)


def _text_children(node: Node, prefix: str) -> Iterator[str]:
    if isinstance(node, TaskNode):
        return
    for index, child in enumerate(node.children):
        last = index == len(node.children) - 1
        yield f"{prefix}{'└── ' if last else '├── '}{child.path} {_text_label(child)}"
        yield from _text_children(child, prefix + ("    " if last else "│   "))


def _text_label(node: Node) -> str:
    if isinstance(node, TaskNode):
        label = node.method
    elif isinstance(node, ProcessNode):
        label = f"{node.name} ({node.mode.value} process)"
    else:
        label = f"[{node.mode.value}]"
    return f"{label} - {node.description}" if node.description else label


STATE_COLOURS: Mapping[str, tuple[str, str]] = {
    "PENDING": ("#f5f5f5", "#9e9e9e"),
    "STARTED": ("#bbdefb", "#1565c0"),
    "RETRY": ("#ffe0b2", "#ef6c00"),
    "SUCCESS": ("#c8e6c9", "#2e7d32"),
    "FAILURE": ("#ffcdd2", "#c62828"),
    "CANCELLED": ("#e1bee7", "#6a1b9a"),
    "SKIPPED": ("#eeeeee", "#bdbdbd"),
}
"""Fill and stroke of a step in each state, in a run's picture."""


@dataclass
class _Vertex:
    id: str
    label: str
    shape: str = "box"
    state: str | None = None


@dataclass
class _Cluster:
    id: str
    label: str
    members: list[_Vertex | _Cluster] = field(default_factory=list)


@dataclass
class _Layout:
    root: _Cluster
    edges: list[tuple[str, str]] = field(default_factory=list)


def _layout(root: ProcessNode, states: Mapping[str, str]) -> _Layout:
    layout = _Layout(_Cluster("process", root.name))
    entries, exits = _place(root, layout.root, layout, states, top=True)
    start, finish = _Vertex("start", "start", "stadium"), _Vertex("finish", "end", "stadium")
    layout.root.members[:0] = [start]
    layout.root.members.append(finish)
    _connect(layout, layout.root, [start.id], entries or [])
    _connect(layout, layout.root, exits if entries else [start.id], [finish.id])
    return layout


def _place(
    node: Node,
    cluster: _Cluster,
    layout: _Layout,
    states: Mapping[str, str],
    top: bool = False,
) -> tuple[list[str], list[str]]:
    """Lay ``node`` out inside ``cluster``; returns the ids that enter and leave it."""
    if isinstance(node, TaskNode):
        label = f"{node.method}\n{node.description}" if node.description else node.method
        state = states.get(node.path)
        cluster.members.append(_Vertex(_vertex_id("s", node.path), label, state=state))
        return [_vertex_id("s", node.path)], [_vertex_id("s", node.path)]
    if top:
        inner = cluster
    else:
        title = node.name if isinstance(node, ProcessNode) else node.mode.value
        if node.description:
            title = f"{title}: {node.description}"
        inner = _Cluster(
            _vertex_id("p" if isinstance(node, ProcessNode) else "b", node.path), title
        )
    entries: list[str] = []
    exits: list[str] = []
    for child in node.children:
        child_entries, child_exits = _place(child, inner, layout, states)
        if not child_entries:
            continue
        if node.mode is ExecutionMode.CONCURRENT:
            entries += child_entries
            exits += child_exits
        else:
            if entries:
                _connect(layout, inner, exits, child_entries)
            else:
                entries = child_entries
            exits = child_exits
    if inner is not cluster and inner.members:
        cluster.members.append(inner)
    return entries, exits


def _connect(layout: _Layout, cluster: _Cluster, sources: list[str], targets: list[str]) -> None:
    """Edges from every source to every target, through a join point when both fan."""
    if len(sources) > 1 and len(targets) > 1:
        join = _Vertex(f"join_{len(layout.edges)}", "", "point")
        cluster.members.append(join)
        layout.edges += [(source, join.id) for source in sources]
        layout.edges += [(join.id, target) for target in targets]
    else:
        layout.edges += [(source, target) for source in sources for target in targets]


def _vertex_id(kind: str, path: str) -> str:
    return f"{kind}_{path.replace('.', '_')}" if path else kind


def as_mermaid(root: ProcessNode, states: Mapping[str, str] | None = None) -> str:
    """A Mermaid ``flowchart`` of the process, its steps coloured by ``states`` if given."""
    layout = _layout(root, states or {})
    lines = ["flowchart TD"]
    lines.extend(_mermaid_cluster(layout.root, "    "))
    lines.extend(f"    {source} --> {target}" for source, target in layout.edges)
    coloured: dict[str, list[str]] = {}
    for vertex in _vertices(layout.root):
        if vertex.state is not None and vertex.state in STATE_COLOURS:
            coloured.setdefault(vertex.state, []).append(vertex.id)
    for state, ids in coloured.items():
        fill, stroke = STATE_COLOURS[state]
        lines.append(f"    classDef {state.lower()} fill:{fill},stroke:{stroke}")
        lines.append(f"    class {','.join(ids)} {state.lower()}")
    return "\n".join(lines)


def _vertices(cluster: _Cluster) -> Iterator[_Vertex]:
    for member in cluster.members:
        if isinstance(member, _Cluster):
            yield from _vertices(member)
        else:
            yield member


def _mermaid_cluster(cluster: _Cluster, indent: str) -> Iterator[str]:
    yield f'{indent}subgraph {cluster.id}["{_mermaid_text(cluster.label)}"]'
    for member in cluster.members:
        if isinstance(member, _Cluster):
            yield from _mermaid_cluster(member, indent + "    ")
        else:
            text = _mermaid_text(member.label)
            shape = {"box": f'["{text}"]', "stadium": f'(["{text}"])', "point": "(( ))"}
            yield f"{indent}    {member.id}{shape[member.shape]}"
    yield f"{indent}end"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def as_dot(root: ProcessNode, states: Mapping[str, str] | None = None) -> str:
    """A Graphviz ``digraph`` of the process, its steps coloured by ``states`` if given."""
    layout = _layout(root, states or {})
    lines = [f"digraph {_dot_text(root.name)} {{", "    node [shape=box];"]
    lines.extend(_dot_cluster(layout.root, "    "))
    lines.extend(f"    {source} -> {target};" for source, target in layout.edges)
    lines.append("}")
    return "\n".join(lines)


def _dot_cluster(cluster: _Cluster, indent: str) -> Iterator[str]:
    yield f"{indent}subgraph cluster_{cluster.id} {{"
    yield f"{indent}    label={_dot_text(cluster.label)};"
    for member in cluster.members:
        if isinstance(member, _Cluster):
            yield from _dot_cluster(member, indent + "    ")
        else:
            shape = {"box": "box", "stadium": "oval", "point": "point"}[member.shape]
            style = ""
            if member.state is not None and member.state in STATE_COLOURS:
                fill, stroke = STATE_COLOURS[member.state]
                style = f', style=filled, fillcolor="{fill}", color="{stroke}"'
            label = _dot_text(member.label)
            yield f"{indent}    {member.id} [label={label}, shape={shape}{style}];"
    yield f"{indent}}}"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
