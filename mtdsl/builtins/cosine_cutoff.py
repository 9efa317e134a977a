"""`cosine_cutoff(r, cutoff, width = w)`: featomic's shifted cosine (mtdsl/math/functions.py); special:
`cutoff` and `width` are compile-time options, its derivative the built-in `d_cosine_cutoff`."""

from .spec import Builtin, Param

BUILTIN = Builtin("cosine_cutoff", (Param("r"), Param("cutoff", option=True), Param("width", option=True)),
                  "cosine_cutoff(r, cutoff, width = w): featomic's shifted cosine", cost=8.0)
