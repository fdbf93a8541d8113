"""The booster's trees as flat arrays, walked by a compiled loop: `Booster.predict(raw_score=True)`'s
answers, bit for bit, in less of its time (`python -m benchmarks score` prints both).

Why: scoring a daily batch is mostly tree walking (a million rows through every tree), and LightGBM's
dense predict spends part of it building a (feature, value) list per row and walking one row through
every tree before the next. The compiled loop (`_compiled.walk_forest`) walks blocks of 4,096 rows tree
by tree, reading the float32 matrix in place, in either memory order.

The rules are LightGBM's own (`include/LightGBM/tree.h`, v4), so the sums are identical:
- a value within ±kZeroThreshold (1e-35 as float32) is zero (LightGBM's dense reader drops it);
- a numerical split sends a missing value (NaN) by its missing type: to the default side when the
  type is NaN, as zero when it is None; a zero goes to the default side when the type is Zero; any
  other value goes left when it is at most the threshold;
- a categorical split sends a value left when its integer part is a category in the split's bitset;
  a missing, negative or too large value goes right;
- leaf values are summed in tree order in float64, starting from 0.

Boosters this does not cover (several classes, linear trees, averaged forests) get `None` from
`from_booster`, and the caller uses `Booster.predict`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

#: below this many rows per thread, one thread walks them all (a thread costs more than it saves)
ROWS_PER_THREAD = 20_000
#: spans of rows per thread, handed out as threads finish (each span at least ROWS_PER_THREAD rows)
SPANS_PER_WORKER = 8

_HEADER_UNSUPPORTED = ("average_output",)


@dataclass(frozen=True)
class CompiledForest:
    """Every tree's split nodes in global arrays: node `n` reads feature `feature[n]` and goes to
    `child[2n + 1]` (left) or `child[2n]` (right); a negative child `~k` is leaf `k` of `leaf_value`.
    `flags[n]`: bit 0 = a missing value goes left, bit 1 = a zero goes left, bit 2 = categorical (then
    its categories are `cat_words[cat_start[n]: cat_start[n] + cat_len[n]]`, 32 per word)."""

    roots: np.ndarray  # int32, one per tree: its first node, or ~leaf for a one-leaf tree
    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    child: np.ndarray  # int32, 2 per node
    flags: np.ndarray  # int32
    cat_start: np.ndarray  # int32
    cat_len: np.ndarray  # int32
    cat_words: np.ndarray  # uint32 (never empty)
    leaf_value: np.ndarray  # float64
    n_features: int

    @classmethod
    def from_booster(cls, booster: Any) -> CompiledForest | None:
        """The trees `booster.predict` uses by default (its best iteration, if any), or None when the
        model has a shape the walker does not cover."""
        return cls.from_model_text(booster.model_to_string())

    @classmethod
    def from_model_text(cls, text: str) -> CompiledForest | None:
        header, trees = _sections(text)
        if header.get("num_tree_per_iteration", "1") != "1" or any(k in header for k in _HEADER_UNSUPPORTED):
            return None
        if any(tree.get("is_linear", "0") != "0" for tree in trees):
            return None
        parts = _Parts()
        for tree in trees:
            parts.add_tree(tree)
        return cls(**parts.arrays(), n_features=int(header["max_feature_idx"]) + 1)

    def raw_score(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Raw scores (the sum of leaf values) of the float32 rows `x` (any memory order)."""
        from targeting.model._compiled import load, walk_forest

        load()  # compiled (or read from numba's cache) here, not by each thread on its first call
        x = np.asarray(x)
        if x.dtype != np.float32:  # Booster.predict would read float64 values unrounded: not the same sums
            raise TypeError(f"the walker reads float32 rows (the model's matrix), got {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"the model reads {self.n_features} features per row, got an array of shape {x.shape}")
        out = np.empty(len(x), np.float64)
        workers = max(1, min(threads, len(x) // ROWS_PER_THREAD))
        # several spans per worker, taken as each finishes: a worker the machine slows down (a shared VM)
        # holds the others up by at most one span, not by half the rows
        parts = 1 if workers == 1 else min(SPANS_PER_WORKER * workers, len(x) // ROWS_PER_THREAD)
        bounds = np.linspace(0, len(x), parts + 1).astype(np.int64)
        spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))

        def walk(span: tuple[int, int]) -> None:
            walk_forest(x, self, span[0], span[1], out)

        if workers == 1:
            walk(spans[0])
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(walk, spans))
        return out


def _sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The model text's header fields and one dict of fields per tree."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif "=" in line:
            key, value = line.split("=", 1)
            current[key] = value
        elif line in _HEADER_UNSUPPORTED:  # a flag line without a value
            current[line] = ""
    return header, trees


class _Parts:
    """The global arrays, grown one tree at a time."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.child: list[int] = []
        self.flags: list[int] = []
        self.cat_start: list[int] = []
        self.cat_len: list[int] = []
        self.cat_words: list[int] = [0]
        self.leaf_value: list[float] = []

    def add_tree(self, tree: dict[str, str]) -> None:
        leaf_base, node_base = len(self.leaf_value), len(self.feature)
        self.leaf_value.extend(float(v) for v in tree["leaf_value"].split())
        if int(tree["num_leaves"]) == 1:
            self.roots.append(~leaf_base)
            return
        self.roots.append(node_base)
        word_base = len(self.cat_words)
        boundaries = _ints(tree, "cat_boundaries")
        self.cat_words.extend(_ints(tree, "cat_threshold"))

        def node(c: int) -> int:
            return node_base + c if c >= 0 else ~(leaf_base + ~c)

        rows = zip(_ints(tree, "split_feature"), tree["threshold"].split(), _ints(tree, "decision_type"),
                   _ints(tree, "left_child"), _ints(tree, "right_child"), strict=True)  # fmt: skip
        for feature, threshold_text, decision, left, right in rows:
            threshold = float(threshold_text)
            self.feature.append(feature)
            self.child.extend([node(right), node(left)])
            default_left, missing = bool(decision & 2), (decision >> 2) & 3
            if decision & 1:  # categorical: the threshold is the index of the split's bitset
                k = int(threshold)
                self.threshold.append(0.0)
                self.flags.append(4)
                self.cat_start.append(word_base + boundaries[k])
                self.cat_len.append(boundaries[k + 1] - boundaries[k])
                continue
            zero_left = 0.0 <= threshold
            missing_left = default_left if missing in (1, 2) else zero_left  # None: a NaN is read as zero
            if missing == 1:
                zero_left = default_left
            self.threshold.append(threshold)
            self.flags.append(int(missing_left) | int(zero_left) << 1)
            self.cat_start.append(0)
            self.cat_len.append(0)

    def arrays(self) -> dict[str, np.ndarray]:
        kinds = {"roots": np.int32, "feature": np.int32, "threshold": np.float64, "child": np.int32,
                 "flags": np.int32, "cat_start": np.int32, "cat_len": np.int32, "cat_words": np.uint32,
                 "leaf_value": np.float64}  # fmt: skip
        return {name: np.array(getattr(self, name), kind) for name, kind in kinds.items()}


def _ints(tree: dict[str, str], key: str) -> list[int]:
    return [int(v) for v in tree.get(key, "").split()]
