"""`one_hot`: one-hot encoding of one dimension of some labels."""

from __future__ import annotations

import numpy as np

from ..tensor import Labels
from ..tensor._array import is_torch


def one_hot(labels: Labels, dimension: Labels):
    """A ``[len(labels), len(dimension)]`` array with a 1 at the position, in
    ``dimension``, of each entry's value of the dimension's (single) name.

    The array is numpy or torch like ``dimension``'s values, of integer type.
    """
    if len(dimension.names) != 1:
        raise ValueError(
            "only one label dimension can be extracted as one-hot encoding. "
            f"The `dimension` labels contains {len(dimension.names)} names"
        )
    name = dimension.names[0]
    column = labels.array[:, labels._column_index(name)].reshape(-1, 1)
    positions = dimension.positions(column)
    missing = np.nonzero(positions < 0)[0]
    if len(missing):
        raise ValueError(
            f"{name}={int(column[missing[0], 0])} is present in the labels, but was not found in the dimension"
        )
    result = np.zeros((len(labels), len(dimension)), dtype=dimension.array.dtype)
    result[np.arange(len(labels)), positions] = 1
    if is_torch(dimension.values):
        import torch

        return torch.from_numpy(result).to(dimension.values.device)
    return result
