"""Asking kustomize for origin annotations in a copy of an exported tree (`pipeline.locate`): one line appended,
by a new file, only where the kustomization reads back the same plus that key. Plain files, no cluster."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from reconciler.pipeline.locate import ask_for_origins


def test_the_key_is_appended_and_the_kustomization_reads_back_the_same_plus_it(tmp_path: Path) -> None:
    text = "# the app\nresources:\n- cm.yaml\npatches:\n- patch: |-\n    - op: add\n      path: /x\n      value: on\n"
    (tmp_path / "kustomization.yaml").write_text(text)

    assert ask_for_origins(tmp_path)

    written = (tmp_path / "kustomization.yaml").read_text()
    assert written.startswith(text)  # the user's text as written: nothing re-spelled
    assert yaml.safe_load(written) == {**yaml.safe_load(text), "buildMetadata": ["originAnnotations"]}


def test_a_tree_that_shares_the_kustomization_by_hard_link_keeps_its_own(tmp_path: Path) -> None:
    """Trees share unchanged files by hard link (treedelta): written through, both would change."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    os.link(tmp_path / "a" / "kustomization.yaml", tmp_path / "b" / "kustomization.yaml")

    assert ask_for_origins(tmp_path / "a")

    assert (tmp_path / "b" / "kustomization.yaml").read_text() == "resources: [cm.yaml]\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["kustomization.yaml"]  # no partial file left


def test_a_kustomization_written_as_a_flow_mapping_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("{resources: [cm.yaml]}\n")

    assert not ask_for_origins(tmp_path)

    assert (tmp_path / "kustomization.yaml").read_text() == "{resources: [cm.yaml]}\n"


def test_a_kustomization_that_asks_for_origins_itself_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\nbuildMetadata: [originAnnotations]\n")

    assert ask_for_origins(tmp_path)

    assert (tmp_path / "kustomization.yaml").read_text() == "resources: [cm.yaml]\nbuildMetadata: [originAnnotations]\n"
