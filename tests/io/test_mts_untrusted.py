"""Loading untrusted `.mts` files: every malformed file is a FormatError naming what is wrong.

Crafted archives cover each rule (compressed members, zip bombs, duplicates, path
traversal, wrong dtypes and shapes, missing and unknown members, lying headers, pickles);
a hypothesis test mutates valid files and checks that nothing but FormatError escapes,
through each of the three readers (buffer, file, memory map).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtdsl import FormatError, Labels, TensorBlock, TensorMap
from mtdsl.io import mts


def _labels(names, rows) -> Labels:
    return Labels(names, np.array(rows, dtype=np.int32).reshape(-1, len(names)))


def valid_tensor() -> TensorMap:
    properties = _labels(["n"], [[0], [1]])
    block = TensorBlock(np.arange(12.0).reshape(3, 2, 2), _labels(["system", "atom"], [[0, 0], [0, 1], [1, 0]]),
                        [_labels(["c"], [[0], [1]])], properties)
    block.add_gradient("positions", TensorBlock(
        np.ones((2, 3, 2, 2)), _labels(["sample", "system", "atom"], [[0, 0, 0], [2, 1, 0]]),
        [_labels(["xyz"], [[0], [1], [2]]), _labels(["c"], [[0], [1]])], properties))
    tensor = TensorMap(_labels(["o3_lambda"], [[0]]), [block])
    tensor.set_info("producer", "tests")
    return tensor


VALID = mts.save_buffer(valid_tensor())


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def archive(members, compression=zipfile.ZIP_STORED) -> bytes:
    """A ZIP of (name, bytes) pairs or a dict, written by Python's zipfile (duplicates allowed)."""
    stream = io.BytesIO()
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(stream, "w", compression) as output:
        for name, data in items:
            with pytest.warns(UserWarning) if name in output.NameToInfo else _nothing():
                output.writestr(name, data)
    return stream.getvalue()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def replaced(name: str, data: bytes) -> bytes:
    members = members_of(VALID)
    members[name] = data
    return archive(members)


def npy(array, **kwargs) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, **kwargs)
    return stream.getvalue()


def refused(data: bytes, match: str):
    with pytest.raises(FormatError, match=match):
        mts.load_buffer(data)


# -- the container ---------------------------------------------------------------------------------

def test_rewritten_by_zipfile_still_loads():
    mts.load_buffer(archive(members_of(VALID)))


@pytest.mark.parametrize("cut", [0, 3, 21, 100, len(VALID) // 2, len(VALID) - 23, len(VALID) - 1])
def test_truncated_files(cut):
    refused(VALID[:cut], "ZIP|too short|end of central directory|beyond|truncated")


def test_not_a_zip(tmp_path):
    refused(b"hello world, not a zip file at all", "end of central directory record not found")
    refused(b"", "too short")
    (tmp_path / "empty.mts").write_bytes(b"")
    for mmap in (False, True):
        with pytest.raises(FormatError, match="too short|empty file"):
            mts.load(tmp_path / "empty.mts", mmap=mmap)
    with pytest.raises(FileNotFoundError):
        mts.load(tmp_path / "missing.mts")


def test_compression_methods_other_than_deflate_are_refused():
    for method, name in ((zipfile.ZIP_BZIP2, 12), (zipfile.ZIP_LZMA, 14)):
        refused(archive(members_of(VALID), method),
                f"member 'keys.npy': compressed with method {name}; .mts members must be stored \\(0\\) or deflated")


def central_entry(data, name: str) -> int:
    """Offset of `name`'s central directory entry in the archive bytes `data`."""
    central = data.find(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name.encode():
        central = data.find(b"PK\x01\x02", central + 4)
    return central


def test_zip_bomb_beyond_the_inflation_limit(monkeypatch):
    """50 MB of zeros deflated to ~50 kB: refused from the directory sizes, before inflating anything."""
    members = members_of(VALID)
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as output:
        output.writestr("keys.npy", members["keys.npy"])
        output.writestr("blocks/0/values.npy", b"\0" * 50_000_000, compress_type=zipfile.ZIP_DEFLATED)
    assert len(stream.getvalue()) < 200_000
    monkeypatch.setattr(mts, "MAX_INFLATED_BYTES", 10_000_000)
    refused(stream.getvalue(), "compressed members would inflate to 50000000 bytes, more than the 10000000 allowed")


def test_deflated_member_claiming_more_than_deflate_can_give():
    """A directory that claims 1 TB from a few bytes of deflate data: refused, nothing allocated."""
    data = bytearray(archive(members_of(VALID), zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as original:
        info = original.getinfo("blocks/0/values.npy")
    struct.pack_into("<I", data, central_entry(data, info.filename) + 24, 0xFFFFFFFE)  # uncompressed size
    refused(bytes(data), "member 'blocks/0/values.npy': claims 4294967294 bytes inflated from .* deflate's 1032:1")


def test_deflated_member_lying_about_its_size_or_crc():
    """Declared size or CRC that the inflated data does not match: refused, never over-allocated."""
    base = archive(members_of(VALID), zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(io.BytesIO(base)) as original:
        info = original.getinfo("blocks/0/values.npy")
    for offset, value, message in ((24, info.file_size - 8, "inflates to more than the"),
                                   (24, info.file_size + 8, "inflates to .* bytes, the directory declares"),
                                   (16, info.CRC ^ 1, "CRC-32 mismatch")):
        data = bytearray(base)
        struct.pack_into("<I", data, central_entry(data, info.filename) + offset, value)
        refused(bytes(data), f"member 'blocks/0/values.npy': {message}")


def test_corrupted_deflate_stream():
    base = archive(members_of(VALID), zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(io.BytesIO(base)) as original:
        info = original.getinfo("blocks/0/values.npy")
    start = info.header_offset + 30 + len(info.filename)
    for position in range(start, start + info.compress_size):
        data = bytearray(base)
        data[position] ^= 0x55
        try:
            mts.load_buffer(bytes(data))
        except FormatError as error:
            assert "blocks/0/values.npy" in str(error)


def test_duplicated_member():
    members = list(members_of(VALID).items())
    refused(archive(members + [members[1]]), "member 'blocks/0/values.npy': appears twice")


@pytest.mark.parametrize("name", ["../keys.npy", "/keys.npy", "blocks/0/../../x.npy", "blocks\\0\\x.npy",
                                  "blocks//x.npy", "./keys.npy"])
def test_path_traversing_names(name):
    members = members_of(VALID)
    members[name] = members["keys.npy"]
    refused(archive(members), "invalid member name")


def test_member_beyond_the_end_of_the_file():
    data = bytearray(VALID)
    directory = data.rfind(b"PK\x01\x02")  # the last member's central entry: info.json
    struct.pack_into("<II", data, directory + 20, 10**9, 10**9)
    refused(bytes(data), "member 'info.json': claims 1000000000 bytes .* beyond the end")


def test_overlapping_members():
    data = bytearray(VALID)
    directory = data.find(b"PK\x01\x02")  # keys.npy's entry: make it swallow the next member
    (size,) = struct.unpack_from("<I", data, directory + 20)
    struct.pack_into("<II", data, directory + 20, size + 100, size + 100)
    refused(bytes(data), "members 'keys.npy' and 'blocks/0/values.npy' overlap")


def test_local_header_disagreeing_with_directory():
    data = bytearray(VALID)
    local = data.find(b"keys.npy")
    data[local:local + 8] = b"kezs.npy"
    refused(bytes(data), "member 'keys.npy': local header names a different member")


def test_encrypted_flag():
    data = bytearray(VALID)
    directory = data.find(b"PK\x01\x02")
    data[directory + 8] |= 1
    refused(bytes(data), "member 'keys.npy': encrypted members are not supported")


def test_corrupted_data_fails_the_crc():
    data = bytearray(VALID)
    position = data.find(b"producer")
    data[position] ^= 0x20
    refused(bytes(data), "member 'info.json': CRC-32 mismatch")


# -- the layout ------------------------------------------------------------------------------------------

def test_missing_member():
    members = members_of(VALID)
    del members["blocks/0/properties.npy"]
    refused(archive(members), "member 'blocks/0/properties.npy' is missing")
    del members["keys.npy"]
    refused(archive(members), "neither 'keys.npy'")


def test_unknown_member():
    members = members_of(VALID)
    members["blocks/0/notes.txt"] = b"hello"
    refused(archive(members), "member 'blocks/0/notes.txt' is not part of the .mts layout")
    members = members_of(VALID)
    members["blocks/1/values.npy"] = members["blocks/0/values.npy"]
    refused(archive(members), "member 'blocks/1/values.npy' is not part of the .mts layout")


def test_gradient_without_values():
    members = members_of(VALID)
    members["blocks/0/gradients/strain/samples.npy"] = members["blocks/0/samples.npy"]
    refused(archive(members), "member 'blocks/0/gradients/strain/values.npy' is missing")


def test_gradients_nested_too_deep():
    members = members_of(VALID)
    prefix = "blocks/0/"
    for _ in range(mts.MAX_GRADIENT_DEPTH + 1):
        prefix += "gradients/g/"
        members[prefix + "values.npy"] = npy(np.zeros((0, 2)))
        members[prefix + "samples.npy"] = npy(np.zeros(0, dtype=[("sample", "<i4")]))
    refused(archive(members), "gradients nested deeper than 16 levels")


# -- the NPY members ---------------------------------------------------------------------------------------

def test_pickled_object_arrays_are_never_unpickled(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    values = np.empty((3, 2, 2), dtype=object)
    values[0, 0, 0] = Payload()
    data = replaced("blocks/0/values.npy", npy(values, allow_pickle=True))
    assert b"'descr': '|O'" in data and str(marker).encode() in data  # the pickle really is there
    refused(data, r"member 'blocks/0/values.npy': unsupported dtype '\|O'")
    assert not marker.exists()


@pytest.mark.parametrize("dtype", [np.longdouble, "M8[s]", np.bool_, "U3", [("a", "<f8")]])
def test_wrong_value_dtypes(dtype):
    refused(replaced("blocks/0/values.npy", npy(np.zeros((3, 2, 2), dtype=dtype))), "member 'blocks/0/values.npy'")


@pytest.mark.parametrize("array, message", [
    (np.zeros(3, dtype=[("system", "<i8"), ("atom", "<i8")]), r"labels fields must all be '<i4'"),
    (np.zeros(3, dtype=[("system", "<i4"), ("atom", ">i4")]), r"labels fields must all be '<i4'"),
    (np.zeros(3, dtype=[("system", "<f4"), ("atom", "<f4")]), r"labels fields must all be '<i4'"),
    (np.zeros(3, dtype=np.int32), "structured array of int32 fields"),
    (np.zeros((3, 2), dtype=np.int32), "must be a 1-D structured array"),
    (np.zeros((3, 1), dtype=[("system", "<i4"), ("atom", "<i4")]), "must be a 1-D structured array"),
    (np.zeros(3, dtype=[("system", "<i4"), ("atom", "<i4")]), "same label entry multiple times"),
    (np.arange(3, dtype="<i4").repeat(2).view([("sys tem", "<i4"), ("atom", "<i4")]), "is not a valid label name"),
])
def test_wrong_labels(array, message):
    refused(replaced("blocks/0/samples.npy", npy(array)), f"member 'blocks/0/samples.npy': .*{message}")


def test_values_shape_disagreeing_with_labels():
    refused(replaced("blocks/0/values.npy", npy(np.zeros((4, 2, 2)))),
            r"member 'blocks/0/values.npy': values have shape \[4, 2, 2\] but the labels give \[3, 2, 2\]")
    refused(replaced("blocks/0/gradients/positions/values.npy", npy(np.zeros((2, 3, 2, 5)))),
            "member 'blocks/0/gradients/positions/values.npy'")


def test_gradient_dtype_disagreeing_with_its_block():
    refused(replaced("blocks/0/gradients/positions/values.npy", npy(np.ones((2, 3, 2, 2), dtype=np.float32))),
            "gradient 'blocks/0/gradients/positions/': .*gradient values have dtype 'f32' but the block values have dtype 'f64'")


def test_gradient_samples_pointing_outside_the_block():
    samples = np.array([(0, 0, 0), (7, 1, 0)], dtype=[("sample", "<i4"), ("system", "<i4"), ("atom", "<i4")])
    refused(replaced("blocks/0/gradients/positions/samples.npy", npy(samples)),
            "gradient 'blocks/0/gradients/positions/': .*'sample' values must be rows of the block")


def test_values_with_one_dimension():
    refused(replaced("blocks/0/values.npy", npy(np.zeros(3))), "at least 2 dimensions")


def test_fortran_order():
    refused(replaced("blocks/0/values.npy", npy(np.asfortranarray(np.zeros((3, 2, 2))))), "Fortran order")


def test_header_claiming_more_data_than_present():
    data = npy(np.zeros((3, 2, 2)))
    lying = data.replace(b"(3, 2, 2)", b"(9, 2, 2)")
    refused(replaced("blocks/0/values.npy", lying), r"header describes float64 values of shape \[9, 2, 2\] \(288 bytes\) "
                                                    r"but 96 bytes of data follow")
    huge = raw_npy(b"{'descr': '<f8', 'fortran_order': False, 'shape': (0, 99999999999999999, 99999999999999), }")
    refused(replaced("blocks/0/values.npy", huge), r"shape \[0, 99999999999999999, 99999999999999\] is too large")
    refused(replaced("blocks/0/values.npy", raw_npy(b"{'descr': '<f8', 'fortran_order': False, 'shape': (1" + b"0" * 30
                                                    + b",), }")), "absurdly large integer")


def raw_npy(header: bytes, data: bytes = bytes(96)) -> bytes:
    padded = header + b" " * (117 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded + data


@pytest.mark.parametrize("header, message", [
    (b"{'descr': '<f8', 'shape': (3, 2, 2), }", "exactly 'descr', 'fortran_order' and 'shape'"),
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 2), 'x': 1}", "exactly"),
    (b"{'descr': '<f8', 'fortran_order': 0, 'shape': (3, 2, 2), }", "True or False"),
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': [3, 2, 2], }", "tuple of integers"),
    (b"{'descr': __import__('os').system('echo hi'), 'fortran_order': False, 'shape': (3,)}", "unexpected '_'"),
    (b"{'descr': '<f8', 'fortran_order': False, 'shape': (((((((3,),),),),),),), }", "nested too deeply"),
    (b"{'descr': '<f\\x38', 'fortran_order': False, 'shape': (3, 2, 2), }", "escape sequences"),
])
def test_malformed_npy_headers(header, message):
    refused(replaced("blocks/0/values.npy", raw_npy(header)), f"member 'blocks/0/values.npy': .*{message}")


def test_npy_header_longer_than_its_member():
    refused(replaced("blocks/0/values.npy", b"\x93NUMPY\x01\x00\xff\xff{}"), "NPY header claims 65535 bytes")
    refused(replaced("blocks/0/values.npy", b"\x93NUMPY\x09\x00"), "bad magic|unknown NPY version")


@pytest.mark.parametrize("info, message", [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object whose values are strings"),
    (b'{"a": 1}', "must be a JSON object whose values are strings"),
    (b"[" * 100_000, "not valid JSON"),
    (b'{"a": "\xff"}', "not valid JSON"),
])
def test_bad_info(info, message):
    refused(replaced("info.json", info), f"member 'info.json': {message}")


def test_labels_files():
    data = mts.save_buffer(_labels(["a"], [[1], [2]]))
    assert mts.load_buffer(data) == _labels(["a"], [[1], [2]])
    with pytest.raises(FormatError, match="2 entries of 1 int32 .* but 12 bytes of data follow"):
        mts.load_buffer(data + b"junk")
    with pytest.raises(FormatError, match="but 7 bytes of data follow"):
        mts.load_buffer(data[:-1])


# -- mutations of valid files -------------------------------------------------------------------------------

BASES = [VALID, mts.save_buffer(valid_tensor().block(0)), mts.save_buffer(_labels(["a", "b"], [[1, 2], [3, 4]]))]


@st.composite
def mutated(draw) -> bytes:
    data = draw(st.sampled_from(BASES))
    kind = draw(st.sampled_from(["flip", "cut", "swap", "duplicate", "rename", "delete", "insert", "header"]))
    if kind in ("flip", "cut", "insert") or not data.startswith(b"PK"):
        data = bytearray(data)
        if kind == "cut":
            return bytes(data[:draw(st.integers(0, len(data) - 1))])
        if kind == "insert":
            position = draw(st.integers(0, len(data)))
            return bytes(data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position:])
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
        return bytes(data)
    members = list(members_of(data).items())
    names = [name for name, _ in members]
    first = draw(st.integers(0, len(members) - 1))
    if kind == "swap":
        second = draw(st.integers(0, len(members) - 1))
        members[first], members[second] = (members[first][0], members[second][1]), (members[second][0], members[first][1])
    elif kind == "duplicate":
        members.append(members[first])
    elif kind == "header" and members[first][0].endswith(".npy"):
        # a plausible but lying NPY header on the member's data
        name, content = members[first]
        length = 10 + struct.unpack_from("<H", content, 8)[0]
        descr = draw(st.sampled_from(["'<f8'", "'<f4'", "'<i4'", "'|O'", "[('a', '<i4')]", "[('sample', '<i4'), ('b', '<i4')]"]))
        shape = draw(st.lists(st.integers(0, 40), max_size=5))
        members[first] = (name, raw_npy(f"{{'descr': {descr}, 'fortran_order': False, 'shape': ({', '.join(map(str, shape))},), }}"
                                        .encode(), content[length:]))
    elif kind == "rename":
        new = draw(st.sampled_from(names) | st.sampled_from(["../x", "blocks/0/gradients/p/values.npy", "x.npy", ""])
                   | st.text(min_size=1, max_size=12))
        members[first] = (new, members[first][1])
    else:
        del members[first]
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as output:
        for name, content in members:
            info = zipfile.ZipInfo(name)
            with pytest.warns(UserWarning) if name in output.NameToInfo else _nothing():
                output.writestr(info, content)
    return stream.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_files_load_or_raise_format_error(data):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "mutated.mts")
        with open(path, "wb") as file:
            file.write(data)
        for load in (mts.load_buffer, lambda _: mts.load(path), lambda _: mts.load(path, mmap=True)):
            try:
                load(data)
            except FormatError:
                pass


def test_every_single_byte_flip_and_cut():
    """Exhaustive over positions: each flipped byte and each truncation of the valid files."""
    for base in BASES:
        for position in range(len(base)):
            flipped = bytearray(base)
            flipped[position] ^= 0xFF
            for data in (bytes(flipped), base[:position]):
                try:
                    mts.load_buffer(data)
                except FormatError:
                    pass
