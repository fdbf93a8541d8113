"""What the two modules of compiled loops share (`history/_compiled.py`, `model/_compiled.py`): loading
the loops once per process, and the array types they are compiled for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class Loops:
    """Compiled loops by name: typed and compiled on first use, or loaded from numba's on-disk cache (a
    few seconds of compiling the first time after an install, then a fast load). Scoring loads them on
    its loading thread, beside validation; the server when the model loads."""

    def __init__(self, compile_loops: Callable[[], dict[str, Callable[..., Any]]]) -> None:
        self._compile = compile_loops
        self._loops: dict[str, Callable[..., Any]] = {}

    def __call__(self) -> dict[str, Callable[..., Any]]:
        if not self._loops:
            self._loops.update(self._compile())
        return self._loops


def array_type(kind: Any, readonly: bool = True) -> Any:
    """A 1-d C-contiguous numba array type (read-only inputs accept any array)."""
    from numba import types

    return types.Array(kind, 1, "C", readonly=readonly)


def ints(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.int64)


def floats(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64)
