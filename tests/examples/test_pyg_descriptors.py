"""examples/pyg_descriptors.py for a few steps: the PyG model trains on the mtdsl descriptor."""

import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pyg_descriptors.py"


def test_the_pyg_model_trains_on_mtdsl_features():
    spec = importlib.util.spec_from_file_location("pyg_descriptors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = module.main(["--structures", "8", "--epochs", "6"], log=lambda message: None)
    assert metrics["features"] > 0
    assert metrics["history"][-1] < metrics["history"][0]
