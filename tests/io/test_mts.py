"""`.mts` files against the real metatensor-core: same bytes, loads both ways, mmap, atomic writes."""

from __future__ import annotations

import io
import os
import stat
import warnings
import zipfile

import metatensor
import metatensor.io as mtio
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mtdsl
from mtdsl import FormatError, Labels, MtdslError, TensorBlock, TensorMap
from mtdsl.io import metatensor as _  # noqa: F401 - the tests below use mtdsl.io.metatensor.*
from mtdsl.io import mts
from tests.strategies import tensormaps

SETTINGS = settings(max_examples=25, deadline=None)


# -- helpers ------------------------------------------------------------------------------------

def labels(names, rows) -> Labels:
    return Labels(names, np.array(rows, dtype=np.int32).reshape(-1, len(names)))


def assert_blocks_equal(ours: TensorBlock, theirs: TensorBlock):
    assert ours.samples == theirs.samples
    assert ours.components == theirs.components
    assert ours.properties == theirs.properties
    assert np.asarray(ours.values).dtype == np.asarray(theirs.values).dtype
    np.testing.assert_array_equal(np.asarray(ours.values), np.asarray(theirs.values))
    assert sorted(ours.gradients_list()) == sorted(theirs.gradients_list())
    for parameter in ours.gradients_list():
        assert_blocks_equal(ours.gradient(parameter), theirs.gradient(parameter))


def assert_tensors_equal(ours: TensorMap, theirs: TensorMap):
    assert ours.keys == theirs.keys
    for first, second in zip(ours.blocks(), theirs.blocks()):
        assert_blocks_equal(first, second)
    assert ours.info() == theirs.info()


def with_info(tensor: TensorMap) -> TensorMap:
    tensor.set_info("producer", "mtdsl tests")
    tensor.set_info("zz_unicode", "é ☃ \U0001F600 \"quoted\"\n\ttab\x01")
    return tensor


def nested_block() -> TensorBlock:
    """A block with positions and strain gradients, the positions gradient having its own gradient."""
    rng = np.random.default_rng(7)
    xyz = labels(["xyz"], [[0], [1], [2]])
    samples = labels(["system", "atom"], [[0, 0], [0, 1], [1, 0]])
    properties = labels(["n"], [[0], [3]])
    block = TensorBlock(rng.standard_normal((3, 2)), samples, [], properties)
    positions = TensorBlock(
        rng.standard_normal((4, 3, 2)), labels(["sample", "system", "atom"], [[0, 0, 0], [0, 0, 1], [1, 0, 1], [2, 1, 0]]),
        [xyz], properties,
    )
    positions.add_gradient(
        "positions",
        TensorBlock(rng.standard_normal((2, 3, 3, 2)), labels(["sample", "system", "atom"], [[0, 0, 0], [3, 1, 0]]),
                    [labels(["xyz_2"], [[0], [1], [2]]), xyz], properties),
    )
    strain = TensorBlock(
        rng.standard_normal((3, 3, 3, 2)), labels(["sample", "system"], [[0, 0], [1, 0], [2, 1]]),
        [labels(["xyz_2"], [[0], [1], [2]]), labels(["xyz_1"], [[0], [1], [2]])], properties,
    )
    block.add_gradient("strain", strain)
    block.add_gradient("positions", positions)
    return block


def special_tensors() -> dict[str, TensorMap]:
    empty_properties = TensorBlock(np.zeros((2, 0)), labels(["s"], [[0], [1]]), [], Labels.empty(["p"]))
    zero_samples = TensorBlock(np.zeros((0, 3, 2)), Labels.empty(["system", "atom"]), [labels(["c"], [[0], [1], [2]])],
                               labels(["n"], [[0], [1]]))
    return {
        "empty": TensorMap(Labels.empty(["o3_lambda"]), []),
        "empty_properties": TensorMap(Labels.range("k", 1), [empty_properties]),
        "zero_samples": TensorMap(Labels.range("k", 1), [zero_samples]),
        "nested_gradients": with_info(TensorMap(Labels.range("k", 1), [nested_block()])),
        "int32": TensorMap(Labels.range("k", 1), [TensorBlock(np.arange(6, dtype=np.int32).reshape(3, 2),
                                                              Labels.range("s", 3), [], Labels.range("p", 2))]),
    }


# -- the same bytes as metatensor-core ----------------------------------------------------------

@SETTINGS
@given(tensor=st.sampled_from([np.float64, np.float32, np.int32]).flatmap(lambda d: tensormaps(dtype=d)),
       info=st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3))
def test_tensormap_bytes_equal_metatensor(tensor, info):
    for key, value in info.items():
        if "\x00" not in key + value:
            tensor.set_info(key, value)
    ours = mts.save_buffer(tensor)
    assert ours == bytes(mtio.save_buffer(tensor.to_metatensor()))
    assert_tensors_equal(mts.load_buffer(ours), tensor)


@pytest.mark.parametrize("name", list(special_tensors()))
def test_special_tensormaps_bytes_equal_metatensor(name):
    tensor = special_tensors()[name]
    ours = mts.save_buffer(tensor)
    assert ours == bytes(mtio.save_buffer(tensor.to_metatensor()))
    assert_tensors_equal(TensorMap.from_metatensor(mtio.load_buffer(ours)), tensor)
    assert_tensors_equal(mts.load_buffer(ours), tensor)


def test_block_and_labels_bytes_equal_metatensor():
    block = nested_block()
    assert mts.save_buffer(block) == bytes(mtio.save_buffer(mtdsl.io.metatensor.block_to_metatensor(block)))
    for value in (labels(["system", "atom"], [[0, 1], [2, -3]]), Labels.empty(["a"]), Labels.range("n", 100)):
        assert mts.save_buffer(value) == bytes(mtio.save_buffer(value.to_metatensor() if hasattr(value, "to_metatensor")
                                                                 else mtdsl.io.metatensor.labels_to_metatensor(value)))


def test_files_equal_metatensor_files(tmp_path):
    tensor = special_tensors()["nested_gradients"]
    mts.save(tmp_path / "ours.mts", tensor)
    metatensor.save(str(tmp_path / "theirs.mts"), tensor.to_metatensor())
    assert (tmp_path / "ours.mts").read_bytes() == (tmp_path / "theirs.mts").read_bytes()


def test_zip64_past_65535_members_equal_metatensor():
    component = labels(["c"], [[0]])
    n_blocks = 16384  # 4 members each + keys: the ZIP64 end records are needed
    blocks = [TensorBlock(np.full((1, 1, 1), float(i)), Labels.range("s", 1), [component], Labels.range("p", 1))
              for i in range(n_blocks)]
    tensor = TensorMap(Labels.range("k", n_blocks), blocks)
    ours = mts.save_buffer(tensor)
    assert ours == bytes(mtio.save_buffer(tensor.to_metatensor()))
    assert zipfile.ZipFile(io.BytesIO(ours)).testzip() is None
    loaded = mts.load_buffer(ours)
    assert len(loaded) == n_blocks and loaded.block(n_blocks - 1).values[0, 0, 0] == n_blocks - 1


# -- loading both ways ---------------------------------------------------------------------------

@SETTINGS
@given(tensor=st.sampled_from([np.float64, np.float32, np.int32]).flatmap(lambda d: tensormaps(dtype=d)))
def test_metatensor_reads_ours_and_we_read_theirs(tensor, tmp_path_factory):
    directory = tmp_path_factory.mktemp("roundtrip")
    with_info(tensor)
    mts.save(directory / "ours.mts", tensor)
    assert_tensors_equal(TensorMap.from_metatensor(metatensor.load(str(directory / "ours.mts"))), tensor)
    metatensor.save(str(directory / "theirs.mts"), tensor.to_metatensor())
    assert_tensors_equal(mts.load(directory / "theirs.mts"), tensor)
    assert_tensors_equal(mts.load(directory / "theirs.mts", mmap=True), tensor)


def test_numpy_written_files_load(tmp_path):
    """metatensor's `use_numpy=True` writes with np.savez (numpy's header spelling, zipfile's layout)."""
    tensor = special_tensors()["nested_gradients"]
    mtio.save(str(tmp_path / "numpy.mts"), tensor.to_metatensor(), use_numpy=True)
    assert_tensors_equal(mts.load(tmp_path / "numpy.mts"), tensor)


def test_block_and_labels_files(tmp_path):
    block = nested_block()
    metatensor.save(str(tmp_path / "block.mts"), mtdsl.io.metatensor.block_to_metatensor(block))
    assert_blocks_equal(mts.load(tmp_path / "block.mts"), block)
    assert_blocks_equal(mts.load_block(tmp_path / "block.mts", mmap=True), block)
    mts.save(tmp_path / "ours_block.mts", block)
    assert_blocks_equal(mtdsl.io.metatensor.block_from_metatensor(metatensor.load_block(str(tmp_path / "ours_block.mts"))), block)

    value = labels(["system", "atom"], [[0, 1], [2, -3]])
    mts.save(tmp_path / "labels.mts", value)
    assert mts.load_labels(tmp_path / "labels.mts") == value
    assert mtdsl.io.metatensor.labels_from_metatensor(metatensor.load_labels(str(tmp_path / "labels.mts"))) == value
    assert mts.load_labels_buffer(mts.save_buffer(value)) == value
    assert_blocks_equal(mts.load_block_buffer(mts.save_buffer(block)), block)
    with pytest.raises(FormatError, match="unable to load a Labels from '.*block.mts': it holds a TensorBlock, use `load_block`"):
        mts.load_labels(tmp_path / "block.mts")


def test_file_objects_and_buffers():
    tensor = special_tensors()["nested_gradients"]
    stream = io.BytesIO()
    mts.save(stream, tensor)
    assert stream.getvalue() == mts.save_buffer(tensor)
    stream.seek(0)
    assert_tensors_equal(mts.load(stream), tensor)
    data = mts.save_buffer(tensor)
    for buffer in (bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8),
                   torch.frombuffer(bytearray(data), dtype=torch.uint8)):
        assert_tensors_equal(mts.load_buffer(buffer), tensor)
    with pytest.raises(MtdslError, match="needs a path"):
        mts.load(io.BytesIO(data), mmap=True)
    with pytest.raises(TypeError, match="`data` must be one of 'Labels', 'TensorBlock' or 'TensorMap'"):
        mts.save_buffer({"not": "a tensor"})


def test_torch_values_are_saved_as_numpy_would_be():
    tensor = special_tensors()["nested_gradients"]
    assert mts.save_buffer(tensor.to(arrays="torch")) == mts.save_buffer(tensor)
    float32 = tensor.to(dtype=torch.float32, arrays="torch")
    assert_tensors_equal(mts.load_buffer(mts.save_buffer(float32)), tensor.to(dtype=np.float32))


def test_loaded_arrays_are_writable_and_aligned():
    tensor = mts.load_buffer(mts.save_buffer(special_tensors()["nested_gradients"]))
    values = tensor.block(0).values
    assert values.flags.writeable and values.flags.aligned and values.flags.c_contiguous
    values[0, 0] = 1.0


def test_big_endian_members_load():
    block = TensorBlock(np.arange(6.0).reshape(3, 2), Labels.range("s", 3), [], Labels.range("p", 2))
    members = {
        "values.npy": _npy_bytes(np.arange(6.0).reshape(3, 2).astype(">f8")),
        "samples.npy": _npy_bytes(np.arange(3, dtype=">i4").view([("s", ">i4")])),
        "properties.npy": _npy_bytes(np.arange(2, dtype=">i4").view([("p", ">i4")])),
    }
    assert_blocks_equal(mts.load_buffer(_zip(members)), block)


def _npy_bytes(array) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return stream.getvalue()


# -- paths ------------------------------------------------------------------------------------------

def test_mts_extension_added_like_metatensor(tmp_path):
    tensor = special_tensors()["empty"]
    with pytest.warns(UserWarning, match="adding '.mts' extension"):
        mts.save(str(tmp_path / "data"), tensor)
    with pytest.warns(UserWarning, match="adding '.mts' extension"):
        mts.save(tmp_path / "other.npz", tensor)
    assert sorted(os.listdir(tmp_path)) == ["data.mts", "other.npz.mts"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mts.save(tmp_path / "plain.mts", tensor)


# -- mmap ---------------------------------------------------------------------------------------------

def test_mmap_maps_values_read_only(tmp_path):
    tensor = special_tensors()["nested_gradients"]
    mts.save(tmp_path / "data.mts", tensor)
    loaded = mts.load(tmp_path / "data.mts", mmap=True)
    assert_tensors_equal(loaded, tensor)
    values = loaded.block(0).values
    assert not values.flags.writeable and not values.flags.owndata
    base = values
    while getattr(base, "base", None) is not None and not isinstance(base, memoryview):
        base = base.base
    assert isinstance(base, memoryview) and "mmap" in repr(base.obj)
    with pytest.raises(ValueError, match="read-only"):
        values[0, 0] = 1.0
    gradient = loaded.block(0).gradient("positions").gradient("positions").values
    assert not gradient.flags.writeable


def test_mmap_verifies_values_unless_told_not_to(tmp_path):
    """A flipped value byte: refused by every load, mmap included, unless `verify=False`."""
    tensor = TensorMap(Labels.range("k", 1), [TensorBlock(np.zeros((1000, 10)), Labels.range("s", 1000), [],
                                                          Labels.range("p", 10))])
    data = bytearray(mts.save_buffer(tensor))
    member = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("blocks/0/values.npy")
    data[member.header_offset + 30 + len(member.filename) + 20 + 128 + 100] ^= 0xFF  # inside the values
    path = tmp_path / "data.mts"
    path.write_bytes(bytes(data))
    assert mts.load(path, mmap=True, verify=False).block(0).values.shape == (1000, 10)
    for load in (lambda: mts.load(path), lambda: mts.load(path, mmap=True), lambda: mts.load_buffer(bytes(data))):
        with pytest.raises(FormatError, match="'blocks/0/values.npy': CRC-32 mismatch"):
            load()


# -- atomic writes ------------------------------------------------------------------------------------

def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "data.mts"
    good = special_tensors()["nested_gradients"]
    mts.save(path, good)
    before = path.read_bytes()
    # values on the meta device cannot be copied to memory: saving fails after keys.npy is written
    meta = TensorMap(Labels.range("k", 2), [
        TensorBlock(torch.zeros((1, 1), device="meta"), Labels.range("s", 1), [], Labels.range("p", 1))
        for _ in range(2)
    ])
    with pytest.raises((NotImplementedError, RuntimeError)):
        mts.save(path, meta)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["data.mts"]


def test_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "data.mts"
    tensor = special_tensors()["nested_gradients"]
    written = []

    def interrupted_add(self, name, head, body=None):
        written.append(name)
        if len(written) == 5:
            raise KeyboardInterrupt
        original_add(self, name, head, body)

    original_add = mts.ZipWriter.add
    monkeypatch.setattr(mts.ZipWriter, "add", interrupted_add)
    with pytest.raises(KeyboardInterrupt):
        mts.save(path, tensor)
    assert os.listdir(tmp_path) == []


def test_save_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "data.mts"
    mts.save(path, special_tensors()["empty"])
    os.chmod(path, 0o640)
    mts.save(path, special_tensors()["int32"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert_tensors_equal(mts.load(path), special_tensors()["int32"])
    umask = os.umask(0o022)
    os.umask(umask)
    mts.save(tmp_path / "new.mts", special_tensors()["empty"])
    assert stat.S_IMODE(os.stat(tmp_path / "new.mts").st_mode) == 0o666 & ~umask


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    mts.save(tmp_path / "real" / "data.mts", special_tensors()["empty"])
    os.symlink(tmp_path / "real" / "data.mts", tmp_path / "link.mts")
    mts.save(tmp_path / "link.mts", special_tensors()["int32"])
    assert os.path.islink(tmp_path / "link.mts")
    assert_tensors_equal(mts.load(tmp_path / "real" / "data.mts"), special_tensors()["int32"])


@pytest.mark.parametrize("parameter", ["a/b", "..", "", "back\\slash"])
def test_gradient_names_that_are_not_member_names(parameter):
    properties = Labels.range("p", 1)
    block = TensorBlock(np.ones((1, 1)), Labels.range("s", 1), [], properties)
    block.add_gradient(parameter, TensorBlock(np.ones((1, 1)), labels(["sample"], [[0]]), [], properties))
    with pytest.raises(FormatError, match="cannot be a member name"):
        mts.save_buffer(block)


def test_unsupported_dtype_is_refused_before_writing(tmp_path):
    tensor = TensorMap(Labels.range("k", 1), [TensorBlock(np.zeros((1, 1), dtype=np.longdouble), Labels.range("s", 1),
                                                          [], Labels.range("p", 1))])
    with pytest.raises(FormatError, match="blocks/0/values.npy: values of dtype float128 cannot be stored"):
        mts.save(tmp_path / "data.mts", tensor)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.environ.get("MTDSL_SLOW_TESTS") != "1", reason="writes 2 x 4.3 GB; set MTDSL_SLOW_TESTS=1")
def test_zip64_past_4_gib_equal_metatensor(tmp_path):
    """A member larger than 4 GiB and members starting beyond it: ZIP64 extras in the directory."""
    values = np.zeros((1000, 1000, 540, 1))  # 4.32 GB of zero pages, never touched
    values[999, 999, 539, 0] = 42.0
    big = TensorBlock(values, Labels.range("s", 1000), [Labels.range("a", 1000), Labels.range("b", 540)],
                      Labels.range("p", 1))
    small = TensorBlock(np.ones((2, 1, 1, 1)), Labels.range("s", 2), [Labels.range("a", 1), Labels.range("b", 1)],
                        Labels.range("p", 1))
    tensor = with_info(TensorMap(Labels.range("k", 2), [big, small]))
    mts.save(tmp_path / "ours.mts", tensor)
    metatensor.save(str(tmp_path / "theirs.mts"), tensor.to_metatensor())
    with open(tmp_path / "ours.mts", "rb") as ours, open(tmp_path / "theirs.mts", "rb") as theirs:
        while True:
            chunk = ours.read(1 << 26)
            assert chunk == theirs.read(1 << 26)
            if not chunk:
                break
    loaded = mts.load(tmp_path / "theirs.mts", mmap=True)
    assert loaded.block(0).values[999, 999, 539, 0] == 42.0 and loaded.info() == tensor.info()
    assert metatensor.load(str(tmp_path / "ours.mts")).block(1).values.sum() == 2.0


def test_non_ascii_gradient_names_equal_metatensor():
    properties = Labels.range("p", 1)
    block = TensorBlock(np.ones((1, 1)), Labels.range("s", 1), [], properties)
    block.add_gradient("pösitions", TensorBlock(np.ones((1, 1)), labels(["sample"], [[0]]), [], properties))
    tensor = TensorMap(Labels.range("k", 1), [block])
    ours = mts.save_buffer(tensor)
    assert ours == bytes(mtio.save_buffer(tensor.to_metatensor()))
    assert mts.load_buffer(ours).block(0).gradients_list() == ["pösitions"]


def test_saving_over_a_mapped_file_keeps_the_mapping_valid(tmp_path):
    path = tmp_path / "data.mts"
    old = special_tensors()["nested_gradients"]
    mts.save(path, old)
    mapped = mts.load(path, mmap=True)
    new = old.copy()
    new.block(0).values[:] = 7.0
    mts.save(path, new)  # replaces the file: the old mapping still sees the old data
    assert_tensors_equal(mapped, old)
    assert_tensors_equal(mts.load(path), new)


def test_mapped_map_converts_to_torch_without_sharing_read_only_pages(tmp_path):
    import torch

    samples = mtdsl.Labels(["system", "atom"], np.array([[0, 0], [0, 1]]))
    block = mtdsl.TensorBlock(np.ones((2, 3)), samples, [], mtdsl.Labels.range("n", 3))
    tensor = mtdsl.TensorMap(mtdsl.Labels.single(), [block])
    path = tmp_path / "mapped.mts"
    mtdsl.save(path, tensor)
    mapped = mtdsl.load(path, mmap=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it shares non-writable memory
        converted = mapped.to(arrays="torch")
    block = converted.block(0)
    assert isinstance(block.values, torch.Tensor)
    block.values.add_(1.0)  # writable: its own memory
