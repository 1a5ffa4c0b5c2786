"""Parsing a stack's render again parses only the documents that changed, and gives what a whole parse gives."""

from __future__ import annotations

import pytest

from reconciler.errors import ManifestError
from reconciler.objects import parse_objects, parse_reusing


def configmap(name: str, value: str, origin: str = "") -> str:
    annotations = f"  annotations:\n    config.kubernetes.io/origin: |\n      path: {origin}\n" if origin else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n{annotations}  name: {name}\ndata:\n  value: {value}\n"


def render(*documents: str) -> str:
    return "---\n".join(documents)


def test_a_render_parsed_in_pieces_is_what_a_whole_parse_gives() -> None:
    text = render(configmap("a", "1", "cm-a.yaml"), configmap("b", "multi\n    line"), configmap("c", '"3"'))

    objects, _ = parse_reusing(text, {}, stack="web", base_dir="apps/web")

    whole = parse_objects(text, stack="web", base_dir="apps/web")
    assert [(o.manifest, o.stack, o.source_file) for o in objects] == [
        (o.manifest, o.stack, o.source_file) for o in whole]


def test_only_the_changed_document_is_parsed_again() -> None:
    first, documents = parse_reusing(render(configmap("a", "1"), configmap("b", "1")), {}, stack="web")

    second, _ = parse_reusing(render(configmap("a", "1"), configmap("b", "2")), documents, stack="web")

    assert second[0] is first[0]
    assert second[1] is not first[1] and second[1].manifest["data"] == {"value": 2}


def test_a_document_twice_in_one_render_is_two_objects() -> None:
    """The environment's duplicate check compares objects by identity."""
    _, documents = parse_reusing(configmap("a", "1"), {}, stack="web")

    objects, _ = parse_reusing(render(configmap("a", "1"), configmap("a", "1")), documents, stack="web")

    assert len(objects) == 2 and objects[0] is not objects[1]


@pytest.mark.parametrize("text", [
    "--- !!map\n" + configmap("a", "1"),
    configmap("a", "1") + "...\n---\n" + configmap("b", "2"),
    "%YAML 1.1\n---\n" + configmap("a", "1"),
])
def test_a_render_with_other_markers_is_parsed_whole(text: str) -> None:
    objects, documents = parse_reusing(text, {}, stack="web")

    assert documents == {}
    assert [o.manifest for o in objects] == [o.manifest for o in parse_objects(text, stack="web")]


def test_an_error_names_the_line_of_the_whole_render() -> None:
    text = render(configmap("a", "1"), configmap("b", "1"), "apiVersion: v1\nkind: [unclosed\n")
    with pytest.raises(ManifestError) as whole:
        parse_objects(text, stack="web")

    with pytest.raises(ManifestError) as pieces:
        parse_reusing(text, {}, stack="web")

    assert str(pieces.value) == str(whole.value) and "line 17" in str(pieces.value)
