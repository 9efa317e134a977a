"""Text forms of Labels, TensorBlock and TensorMap, laid out as metatensor-core prints them.

Labels are a table: a header of names, one line per entry, each value centred in a column
two characters wider than its widest name or value; long labels show their first and last
entries around a `...` line. Blocks and maps list their names and shapes.
"""

from __future__ import annotations

from typing import Sequence


def _centred(text: str, width: int, last: bool) -> str:
    before = (width - len(text)) // 2
    after = width - len(text) - before
    return " " * before + text + ("" if last else " " * after)


def _row(strings: Sequence[str], widths: Sequence[int]) -> str:
    return "".join(_centred(s, w, i == len(widths) - 1) for i, (s, w) in enumerate(zip(strings, widths)))


def labels_table(names: Sequence[str], rows: list[list[int]], n_entries: int, max_entries: int,
                 indent: int = 0) -> str:
    """The table of `names` and the entries `rows` (all of them, or the first and last halves
    of `max_entries` when `n_entries` is larger and `max_entries` is not negative)."""
    widths = [len(name) + 2 for name in names]
    if max_entries < 0 or n_entries <= max_entries:
        first, second = rows, []
    else:
        max_entries = max(max_entries, 2)
        n_after = max_entries // 2
        first, second = rows[:max_entries - n_after], rows[len(rows) - n_after:]
    first = [[str(v) for v in row] for row in first]
    second = [[str(v) for v in row] for row in second]
    for row in first + second:
        widths = [max(w, len(s) + 2) for w, s in zip(widths, row)]
    pad = " " * indent
    lines = [_row(names, widths)]
    lines += [pad + _row(row, widths) for row in first]
    if second:
        half = sum(widths) // 2
        half = half - 3 if half > 3 else half
        lines.append(pad + " " * (half + 1) + "...")
        lines += [pad + _row(row, widths) for row in second]
    return "\n".join(lines)


def _names(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]"


def block_text(block, gradient_path: Sequence[str] = ()) -> str:
    shape = tuple(int(v) for v in block.values.shape)
    if gradient_path:
        text = f"TensorBlock gradient for '{'/'.join(gradient_path)}', with shape {shape}\n"
    else:
        text = f"TensorBlock with shape {shape}\n"
    text += f"    samples: {_names(block.samples.names)}\n"
    components = [name for component in block.components for name in component.names]
    if components:
        text += f"    components: {_names(components)}\n"
    text += f"    properties: {_names(block.properties.names)}"
    parameters = block.gradients_list()
    if parameters:
        text += "\n\n    gradients:"
        width = max(len(p) for p in parameters)
        for parameter in parameters:
            shape = tuple(int(v) for v in block.gradient(parameter).values.shape)
            text += f"\n        {parameter.ljust(width)} => TensorBlock with shape {shape}"
    return text


def tensormap_text(tensor, max_keys: int) -> str:
    """`TensorMap with N blocks`, its key names and one line per block (at most `max_keys`,
    all of them when negative)."""
    count = len(tensor)
    shown = count if max_keys < 0 else min(max_keys, count)
    names = tensor.keys.names
    n_columns = max(1, len(names))
    rows = [[str(int(v)) for v in row] for row in tensor.keys.array[:shown].tolist()]
    widths = [0] * n_columns
    for row in rows:
        widths = [max(w, len(s) + 2) for w, s in zip(widths, row)]
    lines = [f"TensorMap with {count} {'block' if count == 1 else 'blocks'}",
             f"    keys: {_names(names)}", "    blocks:"]
    for index, row in enumerate(rows):
        cells = "".join(_centred(s, w, False) for s, w in zip(row, widths))
        shape = tuple(int(v) for v in tensor.block_by_id(index).values.shape)
        lines.append(f"      {cells}  => TensorBlock with shape {shape}")
    if shown < count:
        lines.append("      " + "".join(_centred("", w, False) for w in widths) + " ...")
    return "\n".join(lines)
