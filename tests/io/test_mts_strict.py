"""The reader refuses what metatensor-core refuses (NPY header spelling, value dtypes, info.json),
accepts the spellings it accepts, each checked against the real metatensor-core."""

from __future__ import annotations

import io
import struct
import zipfile

import metatensor
import metatensor.io as mtio
import numpy as np
import pytest

from mtdsl import FormatError, Labels, TensorBlock, TensorMap
from mtdsl.io import mts

ROWS = np.array([[0, 1], [2, 3]], dtype="<i4").tobytes()
FIELDS = "[('a', '<i4'), ('b', '<i4')]"


def npy(text: str, data: bytes = ROWS, version: int = 1) -> bytes:
    body = text.encode("utf-8") + b"\n"
    length = struct.pack("<H", len(body)) if version == 1 else struct.pack("<I", len(body))
    return b"\x93NUMPY" + bytes((version, 0)) + length + body + data


def with_member(name: str, data: bytes) -> bytes:
    """A small valid TensorMap file with member `name` replaced (or added) by `data`."""
    block = TensorBlock(np.zeros((2, 3)), Labels.range("s", 2), [], Labels.range("p", 3))
    base = mts.save_buffer(TensorMap(Labels.range("k", 1), [block]))
    stream = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(stream, "w") as output:
        for info in source.infolist():
            output.writestr(info.filename, data if info.filename == name else source.read(info))
        if name not in source.namelist():
            output.writestr(name, data)
    return stream.getvalue()


ACCEPTED_HEADERS = {
    "metatensor": "{ 'descr': " + FIELDS[:-1] + ", ], 'fortran_order': False, 'shape': (2, ) }",
    "numpy": "{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': (2,), }",
    "tab and form feed": "{'descr':\t" + FIELDS + ",\x0c'fortran_order': False, 'shape': (2,) }",
    "double quotes": '{"descr": [("a", "<i4"), ("b", "<i4")], "fortran_order": False, "shape": (2,) }',
    "no spaces": "{'descr':[('a','<i4'),('b','<i4')],'fortran_order':False,'shape':(2,)}",
    "spaces everywhere": "{ 'descr' : [ ( 'a' , '<i4' ) , ( 'b' , '<i4' ) ] , 'fortran_order' : False , "
                         "'shape' : ( 2 , ) }",
    "1-tuple without comma": "{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': (2) }",
}

REFUSED_HEADERS = {
    "newline inside": ("{'descr': " + FIELDS + ",\n'fortran_order': False, 'shape': (2,) }", 1),
    "carriage return inside": ("{'descr': " + FIELDS + ",\r'fortran_order': False, 'shape': (2,) }", 1),
    "leading newline": ("\n{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': (2,) }", 1),
    "vertical tab": ("{'descr':\x0b" + FIELDS + ", 'fortran_order': False, 'shape': (2,) }", 1),
    "unicode digit (v3.0)": ("{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': (\u0662,) }", 3),
    "unicode digit, fast path (v3.0)": ("{ 'descr': " + FIELDS[:-1] + ", ], 'fortran_order': False, "
                                        "'shape': (\u0662, ) }", 3),
    "lower-case bool": ("{'descr': " + FIELDS + ", 'fortran_order': false, 'shape': (2,) }", 1),
    "unknown key": ("{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': (2,), 'x': 1 }", 1),
    "no descr fields": ("{'descr': [], 'fortran_order': False, 'shape': (2,) }", 1),
    "fields as lists": ("{'descr': [['a', '<i4'], ['b', '<i4']], 'fortran_order': False, 'shape': (2,) }", 1),
    "shape as a list": ("{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': [2] }", 1),
    "double comma": ("{'descr': " + FIELDS + ", 'fortran_order': False, 'shape': (2,,) }", 1),
}


@pytest.mark.parametrize("text", ACCEPTED_HEADERS.values(), ids=ACCEPTED_HEADERS.keys())
def test_header_spellings_metatensor_accepts(text):
    data = npy(text)
    expected = Labels(["a", "b"], np.array([[0, 1], [2, 3]], dtype=np.int32))
    assert np.array_equal(np.asarray(mtio.load_labels_buffer(data).values), expected.array)
    assert mts.load_labels_buffer(data) == expected


@pytest.mark.parametrize("text, version", REFUSED_HEADERS.values(), ids=REFUSED_HEADERS.keys())
def test_header_spellings_metatensor_refuses(text, version):
    data = npy(text, version=version)
    with pytest.raises(metatensor.MetatensorError):
        mtio.load_labels_buffer(data)
    with pytest.raises(FormatError, match="<labels file>"):
        mts.load_labels_buffer(data)


@pytest.mark.parametrize("descr", ["|u1", "|i1"])
def test_one_byte_values_need_a_byte_order(descr):
    """numpy writes '|u1'; metatensor-core refuses it (and writes '<u1')."""
    def values(byte_order):
        header = f"{{'descr': '{byte_order}{descr[1:]}', 'fortran_order': False, 'shape': (2, 3), }}"
        return with_member("blocks/0/values.npy", npy(header, b"\0" * 6))

    data = values("|")
    with pytest.raises(metatensor.MetatensorError):
        mtio.load_buffer(data)
    with pytest.raises(FormatError, match="'blocks/0/values.npy': dtype '\\|.1': metatensor-core needs an explicit"):
        mts.load_buffer(data)
    good = values("<")
    assert np.asarray(mtio.load_buffer(good).block(0).values).dtype.kind in "ui"
    assert mts.load_buffer(good).block(0).values.dtype.itemsize == 1


@pytest.mark.parametrize("text", ['{"a": "\\ud800"}', '{"a": "\\udc00\\ud800"}', '{"\\ud800": "b"}'])
def test_info_with_unpaired_surrogates(text):
    data = with_member("info.json", text.encode())
    with pytest.raises(metatensor.MetatensorError):
        mtio.load_buffer(data)
    with pytest.raises(FormatError, match="'info.json': .* unpaired surrogate"):
        mts.load_buffer(data)


@pytest.mark.parametrize("text", ['{"a": "\\u0000"}', '{"a\\u0000": "b"}'])
def test_info_with_nul(text):
    """metatensor-core fails on these with an internal error (a Rust panic); a FormatError here."""
    with pytest.raises(FormatError, match="'info.json': .* NUL character"):
        mts.load_buffer(with_member("info.json", text.encode()))


@pytest.mark.parametrize("text", ['{"a": "b", "a": "c"}', ' \n{"a": "b"}\n ', '{"\\ud83d\\ude00": "\\/"}', '{"": "x"}'])
def test_info_metatensor_accepts(text):
    data = with_member("info.json", text.encode())
    assert mts.load_buffer(data).info() == metatensor.io.load_buffer(data).info()
