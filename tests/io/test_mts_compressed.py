"""Deflate-compressed `.mts` files: metatensor-core's data re-packed by Python's zipfile (as
metatensor ships its own test data), and `save(compress=True)` read back by metatensor-core."""

from __future__ import annotations

import io
import zipfile

import metatensor
import metatensor.io as mtio
import numpy as np
import pytest

import mtdsl
from mtdsl import Labels, TensorBlock, TensorMap
from mtdsl.io import mts
from tests.io.test_mts import assert_blocks_equal, assert_tensors_equal, nested_block, with_info


def theirs_tensor():
    """A TensorMap with nested gradients and info, built and serialized by metatensor-core."""
    block = nested_block()
    keys = Labels(["o3_lambda"], np.array([[0], [1]], dtype=np.int32))
    ours = with_info(TensorMap(keys, [block, block.copy()]))
    return ours, ours.to_metatensor()


def repack(data: bytes, method=zipfile.ZIP_DEFLATED, seekable: bool = True, only=None) -> bytes:
    """The archive `data` re-written by Python's zipfile, members compressed with `method`
    (only those named in `only`, when given); not seekable: with data descriptors."""
    stream = io.BytesIO()
    target = stream if seekable else _Unseekable(stream)
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(target, "w") as output:
        for info in source.infolist():
            compressed = only is None or info.filename in only
            output.writestr(info.filename, source.read(info), method if compressed else zipfile.ZIP_STORED)
    return stream.getvalue()


class _Unseekable(io.RawIOBase):
    def __init__(self, stream):
        self._stream = stream

    def writable(self):
        return True

    def write(self, data):
        return self._stream.write(data)

    def flush(self):
        pass


def test_metatensor_written_file_deflated_by_zipfile(tmp_path):
    ours, theirs = theirs_tensor()
    data = repack(bytes(mtio.save_buffer(theirs)))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        assert archive.getinfo("info.json").compress_type == zipfile.ZIP_DEFLATED
    path = tmp_path / "deflated.mts"
    path.write_bytes(data)
    # metatensor-core reads it, and so do all our readers, gradients and info included
    assert_tensors_equal(TensorMap.from_metatensor(metatensor.load(str(path))), ours)
    assert_tensors_equal(mts.load(path), ours)
    assert_tensors_equal(mts.load_buffer(data), ours)
    assert_tensors_equal(mts.load(io.BytesIO(data)), ours)
    mapped = mts.load(path, mmap=True)
    assert_tensors_equal(mapped, ours)
    # a deflated member cannot be mapped: it is inflated into memory (documented in formats.md)
    assert mapped.block(0).values.flags.writeable


def test_mixed_stored_and_deflated_members_with_mmap(tmp_path):
    ours, theirs = theirs_tensor()
    data = repack(bytes(mtio.save_buffer(theirs)), only={"keys.npy", "blocks/1/values.npy", "info.json"})
    path = tmp_path / "mixed.mts"
    path.write_bytes(data)
    mapped = mts.load(path, mmap=True)
    assert_tensors_equal(mapped, ours)
    assert not mapped.block(0).values.flags.writeable  # stored: a view of the map
    assert mapped.block(1).values.flags.writeable  # deflated: inflated into memory


def test_data_descriptors_from_an_unseekable_writer():
    ours, theirs = theirs_tensor()
    data = repack(bytes(mtio.save_buffer(theirs)), seekable=False)
    assert data[6] & 0x08  # general purpose flag bit 3: sizes in a data descriptor after the data
    assert_tensors_equal(mts.load_buffer(data), ours)


def test_compressed_block_and_big_endian_values():
    block = nested_block()
    big = TensorBlock(block.values.astype(">f8"), block.samples, block.components, block.properties)
    for original in (block, big):
        data = repack(mts.save_buffer(original))
        loaded = mts.load_block_buffer(data)
        assert_blocks_equal(loaded, TensorBlock(np.asarray(original.values, dtype="=f8"), original.samples,
                                                original.components, original.properties)
                            if original is big else original)
        assert loaded.values.dtype.isnative


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8])
def test_save_compressed_is_read_by_metatensor_and_zipfile(tmp_path, dtype):
    ours, _ = theirs_tensor()
    ours = ours.to(dtype=dtype)
    path = tmp_path / "compressed.mts"
    mts.save(path, ours, compress=True)
    data = path.read_bytes()
    assert data == mts.save_buffer(ours, compress=True)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert len(data) < len(mts.save_buffer(ours))
    assert_tensors_equal(TensorMap.from_metatensor(metatensor.load(str(path))), ours)
    assert_tensors_equal(mts.load(path), ours)
    assert_tensors_equal(mts.load(path, mmap=True), ours)
    block = ours.block(0)
    mts.save(tmp_path / "block.mts", block, compress=True)
    assert_blocks_equal(mtdsl.io.metatensor.block_from_metatensor(metatensor.load_block(str(tmp_path / "block.mts"))),
                        block)


def test_default_save_stays_stored_and_byte_identical_to_metatensor():
    ours, theirs = theirs_tensor()
    assert mts.save_buffer(ours) == bytes(mtio.save_buffer(theirs))
    assert mts.save_buffer(ours, use_numpy=True) == bytes(mtio.save_buffer(theirs))
