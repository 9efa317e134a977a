"""Every example of docs/language.md gives exactly the code it shows, and every fix is clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtdsl.lang import check

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
BLOCK = re.compile(r"```mt\n(.*?)```", re.S)


def _examples():
    for number, match in enumerate(BLOCK.finditer(DOC.read_text())):
        yield pytest.param(match.group(1), id=f"block{number}")


def _header(text: str, key: str):
    found = re.search(rf"^# {key}: *(\S+)", text, re.M)
    return found.group(1) if found else None


@pytest.mark.parametrize("text", list(_examples()))
def test_documented_example(text, tmp_path):
    name = _header(text, "file") or "example.mt"
    overrides = {}
    override = _header(text, "override")
    if override:
        key, value = override.split("=")
        overrides[key] = value
    path = tmp_path / name
    path.write_text(text)
    diagnostics = check(str(path), overrides or None)
    expected = _header(text, "error") or _header(text, "warning")
    codes = {d.code for d in diagnostics}
    if expected is None:
        assert diagnostics == [], "\n".join(str(d) for d in diagnostics)
    else:
        assert codes == {expected}, "\n".join(str(d) for d in diagnostics)


def test_every_error_code_is_documented():
    text = DOC.read_text()
    for code in ["E001", "E002", "E101", "E102", "E103", "E104", "E105", "E106", "E201", "E202", "E203", "E204",
                 "E205", "E206", "E301", "E302", "E303", "E304", "E305", "E306", "E307", "E308", "W401"]:
        assert f"### {code}" in text, code
