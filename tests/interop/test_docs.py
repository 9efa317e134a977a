"""docs/interop.md's snippets run, in order, in one namespace (as a reader would paste them)."""

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "interop.md"


def test_the_snippets_run(monkeypatch):
    monkeypatch.chdir(DOC.parents[1])
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["energies"].shape == (2,)
    assert namespace["x"].shape[0] == namespace["batch"].num_nodes
