"""The package list in pyproject.toml covers every source package (a wheel would miss the others)."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOP_LEVEL = {"mtdsl": "mtdsl", "grammar": "mtdsl.grammar", "codegen": "mtdsl.codegen", "runtime": "mtdsl.runtime"}


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, name in TOP_LEVEL.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    for name, folder in config["package-dir"].items():
        assert (ROOT / folder / "__init__.py").exists(), name


def test_grammar_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.lark" in config["package-data"]["mtdsl.grammar"]
