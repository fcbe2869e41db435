"""The SVG picture of a process: well-formed, every step drawn once, coloured by state."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from examples.user_guide import ComplexProcess, MixedProcess
from tasktronaut import Builder, ProcessDefinition
from tasktronaut.render import STATE_COLOURS

SVG = "{http://www.w3.org/2000/svg}"
DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "images" / "mixed-process.svg"


def steps_of(picture: str) -> dict[str, ElementTree.Element]:
    root = ElementTree.fromstring(picture)  # raises if the XML is not well-formed
    assert root.tag == f"{SVG}svg"
    return {
        group.get("data-path", ""): group
        for group in root.iter(f"{SVG}g")
        if group.get("class") == "step"
    }


def test_every_step_is_drawn_once_with_its_method_and_description() -> None:
    process = ComplexProcess.build(items=["a", "b", "c"])
    drawn = steps_of(process.to_svg())

    assert list(drawn) == [node.path for node in process.steps()]
    for node in process.steps():
        texts = [text.text for text in drawn[node.path].iter(f"{SVG}text")]
        assert texts[0] == node.method
        assert texts[1:] == ([node.description] if node.description else [])


def test_a_runs_picture_fills_each_step_with_its_states_colour() -> None:
    process = MixedProcess.build()
    paths = [node.path for node in process.steps()]
    states = {paths[0]: "SUCCESS", paths[1]: "FAILURE", paths[2]: "SKIPPED"}

    drawn = steps_of(process.to_svg(states))

    for path, state in states.items():
        rect = drawn[path].find(f"{SVG}rect")
        assert rect is not None
        assert (rect.get("fill"), rect.get("stroke")) == STATE_COLOURS[state]
        assert drawn[path].get("data-state") == state
    untouched = drawn[paths[3]].find(f"{SVG}rect")
    assert untouched is not None
    assert untouched.get("fill") == "#ffffff"


def test_text_is_escaped_and_sensitive_values_are_hidden() -> None:
    class Escapes(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            builder.task(self.compare, description='a < b & "c" > d')

        def compare(self) -> None:
            pass

    class Secretive(ProcessDefinition):
        sensitive_arguments = ("password",)

        def define_process(self, builder: Builder) -> None:
            builder.expected_arguments(password=str)
            builder.task(self.login, description=f"log in with {builder.arguments['password']}")

        def login(self, password: str) -> None:
            pass

    escaped = Escapes.build().to_svg()
    secret = Secretive.build(password="hunter2-secret").to_svg()

    assert [t.text for t in steps_of(escaped)["0"].iter(f"{SVG}text")][1] == 'a < b & "c" > d'
    assert "hunter2-secret" not in secret
    assert "log in with ***" in secret


def test_a_concurrent_block_fans_out_and_back_in() -> None:
    root = ElementTree.fromstring(MixedProcess.build().to_svg())
    assert len(list(root.iter(f"{SVG}circle"))) == 2  # one concurrent block: out and in


def test_the_picture_in_the_docs_is_what_the_renderer_draws() -> None:
    assert DOCS_PICTURE.read_text() == MixedProcess.build().to_svg() + "\n"
