"""`mtdsl run --scheduler / --chunk-size / --domains` and `mtdsl inspect DIRECTORY` against the
single-process `mtdsl run`, on the session's LocalCluster."""

import os

import ase.io
import pytest

import mtdsl
from mtdsl.cli import main

from .conftest import EXAMPLES, assert_same
from .test_run_domains import crystal

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PROGRAM = os.path.join(EXAMPLES, "soap_power_spectrum.mt")
HYPERS = ["--set", "cutoff=3.5", "--set", "n_radial=3", "--set", "max_angular=2"]


def test_run_on_a_scheduler_and_inspect(client, tmp_path, capsys):
    frames = [crystal((1, 1, 1), seed=k) for k in range(5)]
    structures = tmp_path / "frames.xyz"
    ase.io.write(structures, frames)
    assert main(["run", PROGRAM, str(structures), "-o", str(tmp_path / "one.mts"), *HYPERS,
                 "--gradients", "positions"]) == 0
    assert main(["run", PROGRAM, str(structures), "-o", str(tmp_path / "shards"), *HYPERS, "--gradients",
                 "positions", "--scheduler", client.scheduler.address, "--chunk-size", "2"]) == 0
    assert "5 frames in 3 shards (3 written, 0 already done)" in capsys.readouterr().out
    expected = mtdsl.load(tmp_path / "one.mts")
    assert_same({"ps": expected}, {"ps": mtdsl.open_dataset(tmp_path / "shards").load()})
    assert main(["inspect", str(tmp_path / "shards")]) == 0
    out = capsys.readouterr().out
    assert "5 frames in 3 shards" in out and "shard-00002: frames 4:5" in out


def test_run_domains_from_the_command_line(client, tmp_path, capsys):
    structure = tmp_path / "crystal.xyz"
    ase.io.write(structure, crystal((2, 2, 2)))
    assert main(["run", PROGRAM, str(structure), "-o", str(tmp_path / "one.mts"), *HYPERS,
                 "--gradients", "positions"]) == 0
    assert main(["run", PROGRAM, str(structure), "-o", str(tmp_path / "domains.mts"), *HYPERS,
                 "--gradients", "positions", "--domains", "2,1,2", "--scheduler", client.scheduler.address]) == 0
    assert_same({"ps": mtdsl.load(tmp_path / "one.mts")}, {"ps": mtdsl.load(tmp_path / "domains.mts")},
                1e-12, 1e-9)


@pytest.mark.parametrize("arguments, message", [
    (["--domains", "2,2"], "--domains expects three positive integers"),
    (["--scheduler", "local:two"], "expected local or local:N"),
    (["--scheduler", "local", "--chunk-size", "0"], "--chunk-size must be at least 1"),
])
def test_bad_options_are_one_line(tmp_path, capsys, arguments, message):
    structure = tmp_path / "crystal.xyz"
    ase.io.write(structure, crystal((1, 1, 1)))
    status = main(["run", PROGRAM, str(structure), "-o", str(tmp_path / "out"), *HYPERS, *arguments])
    error = capsys.readouterr().err
    assert status in (1, 2) and message in error and "Traceback" not in error
