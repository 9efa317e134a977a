"""The last guard of a model call: no NaN or infinity handed back as a success.

Every value and gradient block of every output is checked; the first non-finite
entry is an `NonFiniteError` naming the output, the block (its key), the gradient,
the frame and the atom. Opt out with `model.check_finite = False` or
`MTDSL_ALLOW_NONFINITE=1` (`mtdsl run --allow-nonfinite`), e.g. for a program that
means to produce infinities.
"""

from __future__ import annotations

import os

import numpy as np

from mtdsl.errors import MtdslError


class NonFiniteError(MtdslError):
    """An output or gradient holds NaN or infinity."""


def finite_check_enabled(model) -> bool:
    if os.environ.get("MTDSL_ALLOW_NONFINITE", "").strip().lower() in ("1", "true", "yes"):
        return False
    return bool(getattr(model, "check_finite", True))


def check_finite(outputs: dict, sources=()) -> None:
    """Raise `NonFiniteError` at the first NaN or infinity of `outputs` (`{name: TensorMap}`);
    `sources[s]` names frame `s` (e.g. `"water.xyz:3"`)."""
    for name, tensor in outputs.items():
        keys = tensor.keys
        for index, block in enumerate(tensor.blocks()):
            key = ", ".join(f"{n}={int(v)}" for n, v in zip(keys.names, keys.array[index]))
            _check_block(f"output {name}, block ({key})", block, None, sources)
            for parameter, gradient in block.gradients():
                _check_block(f"output {name}, block ({key}), gradient {parameter}", gradient, block, sources)


def _check_block(where: str, block, parent, sources) -> None:
    values = np.asarray(block.values)
    if values.dtype.kind not in "fc":
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    first = np.unravel_index(int(np.argmin(finite.reshape(-1))), values.shape)
    row = int(first[0])
    samples = dict(zip(block.samples.names, (int(v) for v in block.samples.array[row])))
    if parent is not None and "sample" in samples and "system" not in samples:
        parent_row = parent.samples.array[samples["sample"]]
        samples.update({n: int(v) for n, v in zip(parent.samples.names, parent_row) if n not in samples})
    place = []
    if "system" in samples:
        system = samples["system"]
        source = sources[system] if 0 <= system < len(sources) and sources[system] else None
        place.append(f"frame {source}" if source else f"frame {system}")
    if "atom" in samples:
        place.append(f"atom {samples['atom']}")
    labels = ", ".join(f"{n}={v}" for n, v in samples.items())
    where_in = ", ".join(place) if place else f"sample ({labels})"
    raise NonFiniteError(
        f"{where}: {values[first]} at {where_in} (sample {labels}); the model produced a "
        "non-finite value (set MTDSL_ALLOW_NONFINITE=1 or model.check_finite = False to accept it)")
