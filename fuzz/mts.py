"""Mutated `.mts` files through `load`: refused with a `FormatError` (or another
`MtdslError`), or loaded and equal to the original; never another exception, never
a different TensorMap.

Originals: TensorMaps with components, gradients and info, a TensorBlock and Labels,
saved by mtdsl. Mutations: bit flips, truncation, byte insertions and deletions,
overwritten ranges, a chunk duplicated, a member's bytes swapped with another's.
Files are loaded from a path (`load`, CRC-checked) and from memory (`load_buffer`);
`load(mmap=True)` does not check value CRCs by design (docs/formats.md) and is
only required to refuse or load, not to detect flipped values; nor is a bare
Labels file, one `.npy` without a checksum in metatensor's format.
"""

from __future__ import annotations

import os
import random
import tempfile

import numpy as np

from .common import Tally, main


def originals() -> list:
    from mtdsl.tensor import Labels, TensorBlock, TensorMap

    rng = np.random.default_rng(0)

    def labels(names, rows):
        return Labels(names, np.asarray(rows, dtype=np.int32).reshape(len(rows), len(names)))

    def block(n_samples, with_gradient):
        samples = labels(["system", "atom"], [[s // 2, s % 2] for s in range(n_samples)])
        components = [labels(["o3_mu"], [[m] for m in range(-1, 2)])]
        properties = labels(["n"], [[0], [1]])
        result = TensorBlock(rng.normal(size=(n_samples, 3, 2)), samples, components, properties)
        if with_gradient:
            gradient_samples = labels(["sample", "system", "atom"], [[s, s // 2, 0] for s in range(n_samples)])
            xyz = labels(["xyz"], [[0], [1], [2]])
            result.add_gradient("positions", TensorBlock(rng.normal(size=(n_samples, 3, 3, 2)), gradient_samples,
                                                         [xyz] + components, properties))
        return result

    tensor = TensorMap(labels(["o3_lambda", "center_type"], [[1, 1], [1, 8]]), [block(4, True), block(2, True)])
    tensor.set_info("provenance", '[{"step": "fuzz"}]')
    single = TensorMap(labels(["_"], [[0]]), [block(3, False)])
    return [tensor, single, block(2, True), labels(["a", "b"], [[1, 2], [3, 4], [5, 6]])]


def same(a, b) -> bool:
    """Whether two loaded objects are equal, bit for bit."""
    from mtdsl.tensor import Labels, TensorBlock, TensorMap

    if type(a) is not type(b):
        return False
    if isinstance(a, Labels):
        return list(a.names) == list(b.names) and np.array_equal(a.array, b.array)
    if isinstance(a, TensorBlock):
        values_a, values_b = np.asarray(a.values), np.asarray(b.values)
        if values_a.dtype != values_b.dtype or values_a.shape != values_b.shape:
            return False
        if values_a.tobytes() != values_b.tobytes():
            return False
        if not (same(a.samples, b.samples) and same(a.properties, b.properties)
                and len(a.components) == len(b.components)
                and all(same(x, y) for x, y in zip(a.components, b.components))):
            return False
        gradients_a, gradients_b = dict(a.gradients()), dict(b.gradients())
        return gradients_a.keys() == gradients_b.keys() and all(
            same(gradients_a[p], gradients_b[p]) for p in gradients_a)
    if isinstance(a, TensorMap):
        return (same(a.keys, b.keys) and len(a) == len(b) and all(same(x, y) for x, y in zip(a.blocks(), b.blocks()))
                and dict(a.info()) == dict(b.info()))
    return False


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        operation = rng.choice(["flip", "flip", "truncate", "insert", "delete", "overwrite", "duplicate", "swap"])
        k = rng.randrange(len(data))
        if operation == "flip":
            data[k] ^= 1 << rng.randrange(8)
        elif operation == "truncate":
            del data[k:]
        elif operation == "insert":
            data[k:k] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif operation == "delete":
            del data[k:k + rng.randint(1, 8)]
        elif operation == "overwrite":
            length = rng.randint(1, 16)
            data[k:k + length] = bytes(rng.choice([0, 255, rng.randrange(256)]) for _ in range(length))
        elif operation == "duplicate":
            length = rng.randint(1, 64)
            data[k:k] = data[k:k + length]
        else:
            j = rng.randrange(len(data))
            length = rng.randint(1, 32)
            data[k:k + length], data[j:j + length] = data[j:j + length], data[k:k + length]
    return bytes(data)


def campaign(n: int, seed: int) -> Tally:
    from mtdsl.errors import MtdslError
    from mtdsl.io import mts
    from mtdsl.tensor import Labels

    rng = random.Random(seed)
    tally = Tally()
    files = [(value, mts.save_buffer(value)) for value in originals()]
    with tempfile.TemporaryDirectory(prefix="mtdsl-fuzz-mts-") as directory:
        path = os.path.join(directory, "mutant.mts")
        for trial in range(n):
            original, data = rng.choice(files)
            mutated = mutate(data, rng)
            how = ("path", "buffer", "mmap")[trial % 3]
            tally.tried += 1
            try:
                if how == "buffer":
                    loaded = mts.load_buffer(mutated)
                else:
                    with open(path, "wb") as handle:
                        handle.write(mutated)
                    loaded = mts.load(path, mmap=how == "mmap")
                    if how == "mmap":  # touch every value: a mapping must not fault
                        for block in getattr(loaded, "blocks", lambda: [loaded])():
                            if hasattr(block, "values"):
                                np.asarray(block.values).sum()
            except MtdslError:
                tally.errors += 1
                continue
            except Exception as error:  # noqa: BLE001 - counted, never raised
                tally.note("escapes", f"{how}: {type(error).__name__}: {error}")
                continue
            # a bare Labels file is one .npy, without a checksum (as metatensor-core writes it): a changed
            # value loads as other labels, which no reader can tell; mmap skips value CRCs by design
            checked = how != "mmap" and not isinstance(original, Labels)
            if checked and not same(loaded, original):
                tally.note("silent", f"{how}: a mutant loaded as a different {type(original).__name__}")
    return tally


if __name__ == "__main__":
    main(campaign)
