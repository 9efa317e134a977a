"""Errors raised by mtdsl. Every error a user can provoke is an `MtdslError`."""


class MtdslError(ValueError):
    """Base class of the errors mtdsl raises on bad input."""


class MetadataError(MtdslError):
    """Labels, blocks or tensor maps whose metadata do not fit together."""


class FormatError(MtdslError):
    """A file or buffer that is not a valid `.mts` (or other supported) file."""


# metatensor's name for its error type, so that `except metatensor.MetatensorError` code ported
# to mtdsl catches the same errors
MetatensorError = MtdslError
