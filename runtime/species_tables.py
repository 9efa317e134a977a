"""Table hypers read at a species (`radius[S.type[i]]`): every species of a batch must have an
entry, else the call fails naming the table and the species (the IR reads NaN there)."""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir

from .bindings import RunError


def check_species_tables(module: ir.Module, batch) -> None:
    for table in module.tables:
        present = {int(z) for z in np.unique(np.asarray(batch.types))}
        missing = sorted(present - set(table.keys))
        if missing:
            raise RunError(f"table hyper `{table.hyper}` has no entry for species {missing} of the systems "
                           f"(its keys: {list(table.keys)}): add them to the table, or override it with "
                           f"compile(..., {table.hyper}={{...}})")
