"""Provenance records are appended, survive .mts-free copies, and name their inputs."""

import json

import numpy as np

from mtdsl import Labels, TensorBlock, TensorMap
from mtdsl.provenance import append_provenance, describe_file, history, make_record, package_versions


def small_map():
    block = TensorBlock(np.zeros((1, 1)), Labels.range("atom", 1), [], Labels.range("n", 1))
    return TensorMap(Labels.single(), [block])


def test_records_are_appended_not_overwritten(tmp_path):
    structure = tmp_path / "water.xyz"
    structure.write_text("1\n\nO 0 0 0\n")
    tensor = small_map()
    append_provenance(tensor, make_record("read", inputs=[describe_file(structure)]))
    append_provenance(tensor, make_record("compute", program_sha256="abc", hypers={"cutoff": 5.0}))
    records = history(tensor)
    assert [r["operation"] for r in records] == ["read", "compute"]
    assert records[0]["inputs"][0]["file"].endswith("water.xyz")
    assert len(records[0]["inputs"][0]["sha256"]) == 64
    assert records[1]["hypers"] == {"cutoff": 5.0}
    assert tensor.get_info("producer").startswith("mtdsl ")
    assert all(r["date"].endswith("+00:00") for r in records)
    json.loads(tensor.get_info("provenance"))


def test_parents_histories_come_first():
    first, second, result = small_map(), small_map(), small_map()
    append_provenance(first, make_record("a"))
    append_provenance(second, make_record("b"))
    append_provenance(result, make_record("join"), parents=[first, second])
    assert [r["operation"] for r in history(result)] == ["a", "b", "join"]


def test_foreign_text_is_kept():
    tensor = small_map()
    tensor.set_info("provenance", "made by hand")
    append_provenance(tensor, make_record("x"))
    assert history(tensor)[0] == {"note": "made by hand"}


def test_versions():
    versions = package_versions("numpy", "not-a-package-at-all")
    assert "mtdsl" in versions and "numpy" in versions and "not-a-package-at-all" not in versions
