"""Errors a user can fix by changing params or data: a stage prints the message alone and exits with 1."""
from __future__ import annotations


class TripledError(ValueError):
    """Bad input (params, dataset folder, index, stored file), with a message that says what to change."""


class ParamsError(TripledError):
    """A params.yaml section is missing or invalid; the message names the key and the problem."""


class LayoutError(TripledError):
    """The dataset folder does not have the layout that params say, or an index points elsewhere."""


class DataError(TripledError):
    """The dataset cannot be used as it is: with data.strict, any reject; otherwise no usable sample."""


class StoreError(TripledError):
    """A stored output (zarr store, distilled set) that is incomplete or holds more than plain numbers."""
