"""The text, Mermaid and Graphviz pictures of a process tree."""

from __future__ import annotations

import re

from examples.user_guide import ConcurrentProcess, MainProcess, MixedProcess
from tasktronaut import Builder, ProcessDefinition


class _Small(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.load, description='Load "raw" rows')
        with builder.concurrent("Fan out") as fan:
            fan.task(self.left)
            fan.task(self.right)
        builder.task(self.save)

    def load(self) -> None:
        pass

    def left(self) -> None:
        pass

    def right(self) -> None:
        pass

    def save(self) -> None:
        pass


def mermaid_vertices(text: str) -> set[str]:
    """The ids of the vertices a Mermaid flowchart declares (not its subgraphs)."""
    return set(re.findall(r"^\s+(\w+)(?:\[|\(\[|\(\()", text, flags=re.MULTILINE))


def mermaid_edges(text: str) -> list[tuple[str, str]]:
    """The ``a --> b`` edges of a Mermaid flowchart."""
    return re.findall(r"^\s+(\w+) --> (\w+)$", text, flags=re.MULTILINE)


def dot_vertices(text: str) -> set[str]:
    """The ids of the vertices a DOT digraph declares."""
    return set(re.findall(r"^\s+(\w+) \[label=", text, flags=re.MULTILINE))


def dot_edges(text: str) -> list[tuple[str, str]]:
    """The ``a -> b;`` edges of a DOT digraph."""
    return re.findall(r"^\s+(\w+) -> (\w+);$", text, flags=re.MULTILINE)


def test_text_render_shows_every_node_with_path_and_description() -> None:
    """render() draws the tree with box characters, paths, modes and descriptions."""
    assert _Small.build().render() == "\n".join(
        [
            "_Small (sequential process)",
            '├── 0 load - Load "raw" rows',
            "├── 1 [concurrent] - Fan out",
            "│   ├── 1.0 left - Fan out",
            "│   └── 1.1 right - Fan out",
            "└── 2 save",
        ]
    )


def test_text_render_of_a_concurrent_process_names_its_mode() -> None:
    """The root line says whether the process is sequential or concurrent."""
    assert ConcurrentProcess.build().render().splitlines()[0] == (
        "ConcurrentProcess (concurrent process)"
    )


def test_mermaid_is_a_top_down_flowchart_with_a_vertex_per_step() -> None:
    """Every step and the start and end become Mermaid vertices."""
    text = _Small.build().to_mermaid()

    assert text.startswith("flowchart TD\n")
    assert mermaid_vertices(text) == {"start", "finish", "s_0", "s_1_0", "s_1_1", "s_2"}
    assert 's_0["load<br/>Load #quot;raw#quot; rows"]' in text
    assert 'subgraph b_1["concurrent: Fan out"]' in text


def test_mermaid_fans_out_into_and_back_in_from_a_concurrent_block() -> None:
    """The step before a concurrent block leads to each branch and each branch to the next."""
    edges = set(mermaid_edges(_Small.build().to_mermaid()))

    assert edges == {
        ("start", "s_0"),
        ("s_0", "s_1_0"),
        ("s_0", "s_1_1"),
        ("s_1_0", "s_2"),
        ("s_1_1", "s_2"),
        ("s_2", "finish"),
    }


def test_mermaid_chains_a_sequential_process_step_by_step() -> None:
    """Each step of a sequential process leads to the next, through the sub-process."""
    text = MainProcess.build().to_mermaid()

    assert set(mermaid_edges(text)) == {
        ("start", "s_0"),
        ("s_0", "s_1_0"),
        ("s_1_0", "s_1_1"),
        ("s_1_1", "s_2"),
        ("s_2", "finish"),
    }
    assert 'subgraph p_1["ValidationProcess"]' in text


def test_mermaid_joins_two_concurrent_groups_through_one_point() -> None:
    """Between two fans, every branch meets at a join point rather than crossing edges."""

    class Twice(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            for _ in range(2):
                with builder.concurrent() as fan:
                    fan.task(self.a)
                    fan.task(self.b)

        def a(self) -> None:
            pass

        def b(self) -> None:
            pass

    edges = mermaid_edges(Twice.build().to_mermaid())
    joins = {target for _, target in edges if target.startswith("join_")}

    assert len(joins) == 1
    (join,) = joins
    assert {edge for edge in edges if join in edge} == {
        ("s_0_0", join),
        ("s_0_1", join),
        (join, "s_1_0"),
        (join, "s_1_1"),
    }


def test_an_empty_process_draws_start_straight_to_end() -> None:
    """Without steps the diagram is just start leading to end."""

    class Empty(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            pass

    process = Empty.build()

    assert mermaid_edges(process.to_mermaid()) == [("start", "finish")]
    assert dot_edges(process.to_dot()) == [("start", "finish")]


def test_dot_is_a_digraph_with_the_same_vertices_and_edges_as_mermaid() -> None:
    """The DOT picture is the same layout as the Mermaid one."""
    process = MixedProcess.build()
    dot, mermaid = process.to_dot(), process.to_mermaid()

    assert dot.startswith('digraph "MixedProcess" {\n')
    assert dot.endswith("\n}")
    assert dot_vertices(dot) == mermaid_vertices(mermaid)
    assert dot_vertices(dot) == {
        "start",
        "finish",
        "s_0",
        "s_1_0",
        "s_1_1",
        "s_2_0",
        "s_2_1",
        "s_3",
    }
    assert set(dot_edges(dot)) == set(mermaid_edges(mermaid))
    assert "subgraph cluster_b_2 {" in dot


def test_dot_escapes_quotes_and_newlines_in_labels() -> None:
    """Descriptions with quotes stay inside their DOT string."""
    dot = _Small.build().to_dot()

    assert 's_0 [label="load\\nLoad \\"raw\\" rows", shape=box];' in dot


def test_a_runs_picture_colours_each_step_by_its_state() -> None:
    process = MixedProcess.build()
    paths = [node.path for node in process.steps()]
    states = {paths[0]: "SUCCESS", paths[1]: "FAILURE", paths[2]: "SUCCESS"}

    mermaid = process.to_mermaid(states)
    dot = process.to_dot(states)

    success = ",".join(f"s_{path.replace('.', '_')}" for path in (paths[0], paths[2]))
    assert f"    class {success} success" in mermaid
    assert "    classDef failure fill:#ffcdd2,stroke:#c62828" in mermaid
    assert "classDef skipped" not in mermaid  # only the states given
    assert 'style=filled, fillcolor="#c8e6c9", color="#2e7d32"' in dot
    assert dot.count("style=filled") == 3
    assert process.to_mermaid() == process.to_mermaid({})  # no states, no colours
