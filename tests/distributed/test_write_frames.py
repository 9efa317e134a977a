"""`write_frames` / `open_dataset` on a real LocalCluster: shards equal one call, a writer killed
half-way resumes and finishes with every frame once, a corrupted shard is reported by name."""

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mtdsl
from mtdsl.cli import main
from mtdsl.distributed import ShardError, write_frames
from mtdsl.distributed.join import slice_systems
from mtdsl.testing import random_systems

from .conftest import EXAMPLES, SMALL, assert_same, compile_example

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def assert_same_rows(expected, found):
    """The rows of one frame: a block of `expected` is in `found` with the same rows, or has none
    (a shard has blocks only for the keys its frames produce)."""
    for key, block in expected.items():
        position = found.keys.position(key)
        if position is None:
            assert len(block.samples) == 0, tuple(key)
            continue
        other = found.block_by_id(position)
        assert block.samples == other.samples and np.array_equal(block.values, other.values)


@pytest.fixture(scope="module")
def model():
    return compile_example("soap_power_spectrum")


def test_shards_read_back_as_one_call(client, model, tmp_path):
    frames = random_systems(species=(1, 6, 8), n_systems=7, seed=5)
    expected = model(frames, gradients=["positions"])
    index = write_frames(model, frames, tmp_path / "out", client=client, gradients=["positions"], chunk_size=2)
    assert (index["written"], index["skipped"]) == (4, 0)
    dataset = mtdsl.open_dataset(tmp_path / "out")
    assert len(dataset) == 7 and dataset.n_shards == 4 and dataset.outputs == ["ps"]
    assert_same(expected, {"ps": dataset.load()})
    # one frame, frame by frame, and a block selection over every frame
    for i, outputs in enumerate(dataset):
        assert_same_rows(slice_systems(expected["ps"], i, i + 1), outputs["ps"])
    assert_same_rows(slice_systems(expected["ps"], 6, 7), dataset[-1]["ps"])
    selected = dataset.select(center_type=8)
    assert np.array_equal(selected.keys.array, expected["ps"].keys.array[expected["ps"].keys.array[:, 0] == 8])
    for key, block in selected.items():
        assert np.array_equal(block.values, expected["ps"].block(key).values)
    # shards are memory-mapped: their values are read-only views of the files
    assert not np.asarray(dataset.shard(0).block(0).values).flags.writeable
    # a rerun finds every shard finished for the same inputs
    again = write_frames(model, frames, tmp_path / "out", client=client, gradients=["positions"], chunk_size=2)
    assert (again["written"], again["skipped"]) == (0, 4)
    # other inputs (moved atoms) are not the finished shards' inputs
    frames[3].positions[0] += 0.1
    moved = write_frames(model, frames, tmp_path / "out", client=client, gradients=["positions"], chunk_size=2)
    assert (moved["written"], moved["skipped"]) == (1, 3)


def test_corrupted_shard_is_named(client, model, tmp_path, capsys):
    frames = random_systems(species=(1, 6, 8), n_systems=4, seed=6)
    write_frames(model, frames, tmp_path, client=client, chunk_size=2)
    victim = tmp_path / "shard-00001.ps.mts"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    dataset = mtdsl.open_dataset(tmp_path)
    assert dataset.verify_all() == ["shard-00001.ps.mts"]
    assert len(dataset.frame(0)["ps"]) > 0  # the intact shard still reads
    with pytest.raises(ShardError, match="shard-00001.ps.mts is corrupted"):
        dataset.load()
    # the CLI reports it too, in one line
    assert main(["inspect", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "shard-00001.ps.mts" in error and "Traceback" not in error and error.count("\n") == 1
    # a rerun recomputes only the corrupted shard
    index = write_frames(model, frames, tmp_path, client=client, chunk_size=2)
    assert (index["written"], index["skipped"]) == (1, 1)
    assert_same(model(frames), {"ps": mtdsl.open_dataset(tmp_path).load()})


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import distributed
    import mtdsl
    from mtdsl.distributed import write_frames
    from mtdsl.testing import random_systems

    address, path, program = sys.argv[1:4]
    model = mtdsl.compile(program, cutoff={cutoff}, n_radial={n_radial}, max_angular={max_angular})
    frames = random_systems(species=(1, 6, 8), n_systems=60, seed=8)
    with distributed.Client(address) as client:
        print("started", flush=True)
        write_frames(model, frames, path, client=client, chunk_size=1)
""").format(**SMALL)


def test_killed_writer_resumes(client, tmp_path):
    path = tmp_path / "killed"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    program = os.path.join(EXAMPLES, "soap_power_spectrum.mt")
    writer = subprocess.Popen([sys.executable, str(script), client.scheduler.address, str(path), program],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(glob.glob(str(path / "shard-*.json"))) < 3:
        assert writer.poll() is None, "the writer ended before it was killed"
        assert time.monotonic() < deadline, "the writer wrote no shard"
        time.sleep(0.005)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    time.sleep(0.5)  # tasks already running on the workers may still land their shard
    done = len(glob.glob(str(path / "shard-*.json")))
    assert 3 <= done < 60 and not (path / "index.json").exists()

    model = mtdsl.compile(program, **SMALL)
    frames = random_systems(species=(1, 6, 8), n_systems=60, seed=8)
    index = write_frames(model, frames, path, client=client, chunk_size=1)
    assert index["skipped"] >= done and index["written"] == 60 - index["skipped"]
    # every frame once, in order
    covered = [frame for record in index["shards"] for frame in range(*record["frames"])]
    assert covered == list(range(60))
    assert_same(model(frames), {"ps": mtdsl.open_dataset(path).load()})
    assert not glob.glob(str(path / "*.tmp"))


def test_structure_files_in(client, model, tmp_path):
    import ase.io

    from .test_run_domains import crystal

    files = []
    for k in range(2):
        files.append(tmp_path / f"part{k}.xyz")
        ase.io.write(files[-1], [crystal((1, 1, 1), seed=10 * k + j) for j in range(2)])
    index = write_frames(model, files, tmp_path / "out", client=client, chunk_size=3)
    assert index["n_frames"] == 4 and index["written"] == 2
    frames = mtdsl.read_structures(files[0]) + mtdsl.read_structures(files[1])
    assert_same(model(frames), {"ps": mtdsl.open_dataset(tmp_path / "out").load()})
