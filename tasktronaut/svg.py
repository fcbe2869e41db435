"""A process tree drawn as SVG, with no layout engine and no script.

A process tree is series-parallel: a sequential block stacks its children,
a concurrent one sets them side by side, so a layered drawing follows from
the tree alone. Each step is a box (its method, and its description below),
each sub-process and block a framed group with its title, and lines run from
each child to the next (a concurrent block fans out from a point above its
children and back in to a point below them). A run's picture fills each step
with the colour of its state (``states``: path to state name, as in
:data:`tasktronaut.render.STATE_COLOURS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .nodes import ExecutionMode, Node, ProcessNode, TaskNode
from .render import STATE_COLOURS

CHARACTER = 7.2  # the width of a character of the 12 px sans-serif labels, about
BOX_HEIGHT = 40
GAP = 24  # between siblings, and between a frame and its content
TITLE = 20  # the height of a frame's title
MARGIN = 12


@dataclass
class _Box:
    """A laid-out node: its size, and the SVG of it drawn with its top-left corner at 0, 0."""

    width: float
    height: float
    parts: list[str] = field(default_factory=list)

    def placed(self, x: float, y: float) -> str:
        return f'<g transform="translate({x:g},{y:g})">{"".join(self.parts)}</g>'


def as_svg(root: ProcessNode, states: Mapping[str, str] | None = None) -> str:
    """An SVG picture of the process, its steps coloured by ``states`` if given."""
    body = _framed(root, states or {}, title=root.name)
    start, end = _terminal("start"), _terminal("end")
    width = max(body.width, start.width) + 2 * MARGIN
    centre = width / 2
    y_body = MARGIN + start.height + GAP
    y_end = y_body + body.height + GAP
    height = y_end + end.height + MARGIN
    parts = [
        start.placed(centre - start.width / 2, MARGIN),
        _line(centre, MARGIN + start.height, centre, y_body),
        body.placed(centre - body.width / 2, y_body),
        _line(centre, y_body + body.height, centre, y_end),
        end.placed(centre - end.width / 2, y_end),
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'viewBox="0 0 {width:g} {height:g}" font-family="sans-serif" font-size="12" '
        f'role="img"><title>{escape(root.name)}</title>'
        "<style>line{stroke:#616161;stroke-width:1.2}</style>"
        f"{''.join(parts)}</svg>"
    )


def _layout(node: Node, states: Mapping[str, str]) -> _Box:
    if isinstance(node, TaskNode):
        return _step(node, states.get(node.path))
    title = node.name if isinstance(node, ProcessNode) else node.mode.value
    if node.description:
        title = f"{title}: {node.description}"
    return _framed(node, states, title)


def _step(node: TaskNode, state: str | None) -> _Box:
    lines = [node.method, *([node.description] if node.description else [])]
    width = max(len(line) for line in lines) * CHARACTER + 2 * MARGIN
    height = BOX_HEIGHT + (16 if node.description else 0)
    fill, stroke = STATE_COLOURS.get(state or "", ("#ffffff", "#424242"))
    tooltip = f"{node.path} {node.method}" + (f": {state}" if state else "")
    looks = ('font-weight="bold"', 'fill="#616161"')  # the method, then the description
    texts = "".join(
        f'<text x="{width / 2:g}" y="{24 + 16 * index}" text-anchor="middle" '
        f"{looks[min(index, 1)]}>{escape(line)}</text>"
        for index, line in enumerate(lines)
    )
    return _Box(
        width,
        height,
        [
            f'<g class="step" data-path="{_attribute(node.path)}" '
            f'data-state="{_attribute(state or "")}">'
            f"<title>{escape(tooltip)}</title>"
            f'<rect width="{width:g}" height="{height}" rx="6" fill="{fill}" stroke="{stroke}"/>'
            f"{texts}</g>"
        ],
    )


def _framed(node: Node, states: Mapping[str, str], title: str) -> _Box:
    """The children of a block or process, laid out by its mode, inside a titled frame."""
    assert not isinstance(node, TaskNode)
    children = [_layout(child, states) for child in node.children]
    inner = _concurrent(children) if node.mode is ExecutionMode.CONCURRENT else _sequence(children)
    width = max(inner.width, len(title) * CHARACTER) + 2 * GAP
    height = TITLE + inner.height + 2 * GAP
    frame = (
        f'<rect width="{width:g}" height="{height:g}" rx="10" fill="none" '
        'stroke="#9e9e9e" stroke-dasharray="4 3"/>'
        f'<text x="10" y="16" fill="#424242">{escape(title)}</text>'
    )
    centre = width / 2
    joins = _line(centre, 0, centre, TITLE + GAP) + _line(centre, height - GAP, centre, height)
    if not inner.parts:  # an empty block: nothing to join
        joins = ""
    return _Box(width, height, [frame, joins, inner.placed(centre - inner.width / 2, TITLE + GAP)])


def _sequence(children: list[_Box]) -> _Box:
    """Children one under another, each joined to the next at the middle."""
    if not children:
        return _Box(0, 0)
    width = max(child.width for child in children)
    parts: list[str] = []
    y = 0.0
    for index, child in enumerate(children):
        if index:
            parts.append(_line(width / 2, y - GAP, width / 2, y))
        parts.append(child.placed((width - child.width) / 2, y))
        y += child.height + GAP
    return _Box(width, y - GAP, parts)


def _concurrent(children: list[_Box]) -> _Box:
    """Children side by side, fanned out from a point above them and back in below them."""
    if not children:
        return _Box(0, 0)
    width = sum(child.width for child in children) + GAP * (len(children) - 1)
    tallest = max(child.height for child in children)
    height = tallest + 2 * GAP
    centre = width / 2
    parts = [_point(centre, 0), _point(centre, height)]
    x = 0.0
    for child in children:
        middle = x + child.width / 2
        parts.append(_line(centre, 0, middle, GAP))
        parts.append(child.placed(x, GAP))
        parts.append(_line(middle, GAP + child.height, centre, height))
        x += child.width + GAP
    return _Box(width, height, parts)


def _terminal(label: str) -> _Box:
    width = len(label) * CHARACTER + 2 * MARGIN
    return _Box(
        width,
        28,
        [
            f'<rect width="{width:g}" height="28" rx="14" fill="#fafafa" stroke="#424242"/>'
            f'<text x="{width / 2:g}" y="18" text-anchor="middle">{escape(label)}</text>'
        ],
    )


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}"/>'


def _point(x: float, y: float) -> str:
    return f'<circle cx="{x:g}" cy="{y:g}" r="3" fill="#616161"/>'


def _attribute(value: str) -> str:
    """``value`` escaped for a double-quoted attribute."""
    return escape(value, {'"': "&quot;"})
