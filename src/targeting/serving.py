"""The MLflow pyfunc: raw declaration rows in -> risk score and rank out (decision 1).

Defined in code ("models from code", `pyfunc_entry.py`); its artifacts are the model folder written by
`TargetingModel.save` (LightGBM text + JSON), so loading it never unpickles anything. History for the
as-of features comes from the history store named by the `TARGETING_HISTORY` environment variable or
the model config's `history_dir` (a folder with `declarations.parquet` and `inspections.parquet`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from targeting.history_index import HistoryIndex, index_folder, load_fresh
from targeting.schema import DECLARATIONS, INSPECTIONS, N_REASONS

HISTORY_ENV = "TARGETING_HISTORY"
#: batches up to this many rows are answered through the history index (serving); larger ones by one
#: sort-merge with the store, which is cheaper when the batch is a good part of the store
INDEX_MAX_ROWS = 50_000
#: LightGBM threads for prediction and explanations (benchmarks/threads.py: 2 threads predict 1.8x faster
#: on an idle 2-core machine and still 1.2x with the other core busy)
THREADS_ENV = "TARGETING_THREADS"


def scoring_threads() -> int:
    return int(os.environ.get(THREADS_ENV) or min(2, os.cpu_count() or 1))


def request_rows(declarations: pd.DataFrame) -> pd.DataFrame:
    """Contract rows as a REST client sends them: plain values, ISO 8601 times, None for missing."""
    rows = declarations.astype(
        {c: "object" for c in declarations.columns if str(declarations[c].dtype) != "float64"}
    )
    return rows.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                    else (v.isoformat() if hasattr(v, "isoformat") else v))  # fmt: skip


def coerce_declarations(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw request rows to contract dtypes; a missing column or an unreadable value is one clear error."""
    from mlflow.exceptions import MlflowException

    missing = [c for c in DECLARATIONS.required if c not in frame.columns]
    if missing:
        raise MlflowException.invalid_parameter_value(f"missing required column(s): {', '.join(missing)}")
    if len(frame) == 0:
        raise MlflowException.invalid_parameter_value("no rows in the request")
    out = frame.copy()
    for spec in DECLARATIONS.columns:
        if spec.name not in out:
            out[spec.name] = None
        try:
            if spec.kind == "timestamp":
                out[spec.name] = pd.to_datetime(out[spec.name], utc=True, format="ISO8601")
            elif spec.kind == "date":
                out[spec.name] = pd.to_datetime(out[spec.name]).dt.date
            elif spec.kind in ("int", "float"):
                out[spec.name] = pd.to_numeric(out[spec.name], errors="raise")
            elif spec.kind == "bool":
                out[spec.name] = out[spec.name].astype("boolean")
        except (ValueError, TypeError) as exc:
            raise MlflowException.invalid_parameter_value(
                f"column {spec.name}: values must be {spec.kind} ({str(exc).splitlines()[0][:120]})"
            ) from None
    return out


def history_columns(folder: Path) -> list[str]:
    """The columns of the history folder's declarations that the store uses (the rest is not read)."""
    import pyarrow.parquet as pq

    from targeting.history import HISTORY_COLUMNS

    present = set(pq.read_schema(folder / "declarations.parquet").names)
    return [c for c in HISTORY_COLUMNS if c in present]


@dataclass
class Scored:
    annotated: pd.DataFrame  # the rows with their as-of history counts
    matrix: pd.DataFrame  # the model's features
    raw: np.ndarray  # log-odds (what TreeSHAP contributions add up to)
    risk_score: np.ndarray  # calibrated probability


class TargetingPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from targeting import kernels
        from targeting.model import TargetingModel

        self.model = TargetingModel.load(context.artifacts["model_dir"])
        _ = self.model.forest  # the trees parsed for the compiled walker while loading (~15 ms)
        kernels.load()  # and its loop loaded (from numba's cache) before the first request, not during it
        config = getattr(context, "model_config", None) or {}
        self.history_dir = os.environ.get(HISTORY_ENV) or config.get("history_dir") or ""
        self._set_store(None)

    def use_history(self, folder: str | Path) -> None:
        """Answer as-of questions from this history folder instead of the configured one."""
        self.history_dir = str(folder)
        self._set_store(None)

    def include_batch(self, rows: pd.DataFrame) -> None:
        """Add a batch's declarations to the store, so that its rows can be scored in any split."""
        self._set_store(self.history().including(rows), saved_index=False)

    def _set_store(self, store: Any, saved_index: bool = True) -> None:
        self._store, self._index, self._may_use_saved, self._index_saved = store, None, saved_index, False

    def history_source(self) -> str:
        """Where as-of answers come from, for the job's progress lines."""
        if self._saved_index() is not None:
            return f"the saved history index in {index_folder(self.history_dir, self._target())}"
        return "the history store (no up-to-date saved index: `targeting history-index` saves one)"

    def saved_index(self) -> HistoryIndex | None:
        """The up-to-date index saved beside the history folder, if there is one (it answers a batch of
        any size)."""
        return self._saved_index()

    def prepare_for_batch(self) -> None:
        """Build what a large batch's as-of lookups use in the saved index (if there is one), so that a
        caller can do it beside other work."""
        index = self._saved_index()
        if index is not None:
            index.prepare_lookups()

    def _target(self) -> str:
        return str(self.model.meta.get("target", "hit"))

    def _saved_index(self) -> HistoryIndex | None:
        """The index saved beside the history folder, if it is up to date (looked for once per folder)."""
        if self._may_use_saved and self.history_dir:
            self._may_use_saved = False
            self._index = load_fresh(self.history_dir, self._target())
            self._index_saved = self._index is not None
        return self._index if self._index_saved else None

    def _answerer(self, n_rows: int) -> Any:
        """Who answers the as-of questions of `n_rows` rows. All give the same answers
        (tests/test_history_index.py); only their cost differs: the history index saved beside the history
        folder when it is up to date (`targeting history-index`), else for a small request (serving) an
        index built in memory on first use, and for a large batch one sort-merge with the store."""
        if self._saved_index() is not None or self._index is not None:
            return self._index
        store = self.history()
        if n_rows > max(INDEX_MAX_ROWS, len(store.declarations) // 10):
            return store
        self._index, self._index_saved = HistoryIndex(store), False
        return self._index

    def history(self):
        from targeting.history import HistoryStore
        from targeting.io import read_parquet

        if self._store is None:
            folder = Path(self.history_dir) if self.history_dir else None
            decl, insp = DECLARATIONS.empty_frame(), INSPECTIONS.empty_frame()
            if folder is not None and (folder / "declarations.parquet").exists():
                decl = read_parquet(folder / "declarations.parquet", columns=history_columns(folder))
                if (folder / "inspections.parquet").exists():
                    insp = read_parquet(folder / "inspections.parquet")
            self._store = HistoryStore.from_tables(decl, insp, self._target())
        return self._store

    def score_rows(self, rows: pd.DataFrame, prefetched: Any = None) -> Scored:
        """Contract-typed rows -> as-of annotated rows, the model's matrix, raw and calibrated scores.
        The one scoring path: REST requests (`predict`) and the daily batch (score.py) both go through it
        (the batch with the `PrefetchedCodes` it started for the saved index, if any)."""
        from targeting.model import annotate

        answerer = self._answerer(len(rows))
        if prefetched is not None and answerer is not self._saved_index():
            prefetched.claim()  # looked up for another answerer: unused
            prefetched = None
        annotated = annotate(rows, answerer, threads=scoring_threads(), prefetched=prefetched)
        matrix = self.model.matrix(annotated, scoring_threads())
        raw = self.model.raw_score(matrix, scoring_threads())
        return Scored(annotated, matrix, raw, self.model.probability(raw))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Per row: calibrated risk, its rank within the request, and the top reasons (TreeSHAP)."""
        from targeting.explain import explain

        rows = coerce_declarations(pd.DataFrame(model_input)).reset_index(drop=True)
        scored = self.score_rows(rows)
        rank = pd.Series(scored.risk_score).rank(ascending=False, method="first").astype(np.int64).to_numpy()
        reasons = explain(self.model.booster, scored.annotated, scored.matrix, N_REASONS,
                          num_threads=scoring_threads(), every_group=False).reasons  # fmt: skip
        out = pd.DataFrame({"declaration_id": rows["declaration_id"].astype(str).to_numpy(),
                            "risk_score": scored.risk_score, "risk_rank": rank})  # fmt: skip
        return pd.concat([out, reasons.reset_index(drop=True)], axis=1)


def signature() -> Any:
    """The served model's signature, from the data contract (not inferred from an example, which would
    make every column that happened to be filled "required"): required columns are typed (times as
    ISO 8601 strings); optional non-text columns are `Any`, because MLflow refuses to put a missing value
    in a long or boolean column, and `coerce_declarations` checks them with a message naming the column."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    kinds = {"string": "string", "category": "string", "timestamp": "string", "date": "string", "int": "long",
             "float": "double", "bool": "boolean"}  # fmt: skip
    specs = [ColSpec(kinds[c.kind] if c.required or kinds[c.kind] == "string" else AnyType(), c.name,
                     required=c.required) for c in DECLARATIONS.columns]  # fmt: skip
    return ModelSignature(inputs=Schema(specs), outputs=infer_signature(None, output_example()).outputs)


def output_example() -> pd.DataFrame:
    """The shape of `predict`'s answer (for the logged signature)."""
    reasons = {}
    for k in range(1, N_REASONS + 1):
        reasons |= {f"reason_{k}": ["consignee never seen before"], f"reason_{k}_feature": ["consignee_prior_decl"],
                    f"reason_{k}_contribution": [0.5]}  # fmt: skip
    return pd.DataFrame({"declaration_id": ["D"], "risk_score": [0.5], "risk_rank": [1], **reasons})
