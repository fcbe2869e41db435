"""What the process tree promises about execution order, checked against recorded runs."""

from __future__ import annotations

from typing import Any

from tasktronaut import ExecutionMode, Process, ProcessNode, TaskNode
from tasktronaut.nodes import Node, steps, walk


def must_precede(process: Process) -> set[tuple[str, str]]:
    """Pairs (a, b) of step paths where step a must end before step b starts."""
    pairs: set[tuple[str, str]] = set()
    for node in walk(process.root):
        if isinstance(node, TaskNode) or node.mode is ExecutionMode.CONCURRENT:
            continue
        earlier: list[str] = []
        for child in node.children:
            later = [step.path for step in steps(child)]
            pairs.update((a, b) for a in earlier for b in later)
            earlier += later
    return pairs


def check_run(process: Process, events: list[dict[str, Any]]) -> None:
    """Assert that a successful run ran every step once, in order, with hooks once each."""
    attempts = [e for e in events if e["kind"] == "step"]
    ran = [e["path"] for e in attempts]
    expected = [step.path for step in process.steps()]
    assert sorted(ran) == sorted(expected), f"steps run {ran}, expected {expected}"
    assert all(e["outcome"] == "ok" for e in attempts), attempts
    by_path = {e["path"]: e for e in attempts}
    for a, b in must_precede(process):
        assert by_path[a]["end"] <= by_path[b]["start"], f"step {a} must end before {b} starts"
    check_hooks(process, events, ("on_started", "on_completed"))


def check_hooks(process: Process, events: list[dict[str, Any]], hooks: tuple[str, ...]) -> None:
    """Assert each hook fired exactly once per process instance, around that process's steps."""
    instances: dict[str, list[Node]] = {}
    for node in walk(process.root):
        if isinstance(node, ProcessNode):
            instances.setdefault(node.name, []).append(node)
    steps_run = {e["path"]: e for e in events if e["kind"] == "step"}
    for hook in hooks:
        fired = [e["process"] for e in events if e["kind"] == "hook" and e["hook"] == hook]
        assert sorted(fired) == sorted(name for name, nodes in instances.items() for _ in nodes), (
            f"{hook} fired for {fired}"
        )
    for name, nodes in instances.items():
        if len(nodes) != 1:
            continue
        own = [steps_run[s.path] for s in steps(nodes[0]) if s.path in steps_run]
        times = {
            e["hook"]: e["at"] for e in events if e["kind"] == "hook" and e["process"] == name
        }
        if own and "on_started" in times:
            assert times["on_started"] <= min(e["start"] for e in own), f"{name} started late"
        if own and "on_completed" in times:
            assert times["on_completed"] >= max(e["end"] for e in own), f"{name} completed early"
