"""The MLflow pyfunc: raw declaration rows in -> risk score, rank and reasons out (decision 1).

Defined in code ("models from code", `entry.py`); its artifacts are the model folder written by
`TargetingModel.save` (LightGBM text + JSON), so loading it never unpickles anything. History for the
as-of features comes from the folder named by the `TARGETING_HISTORY` environment variable or the model
config's `history_dir` (a folder with `declarations.parquet` and `inspections.parquet`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature

from targeting import tracking
from targeting.config import HISTORY_ENV, NO_HISTORY_ENV
from targeting.contract.schema import DECLARATIONS, N_REASONS
from targeting.errors import ModelNotFoundError
from targeting.history.folder import require_history
from targeting.history.source import HistorySource
from targeting.model.classifier import TargetingModel
from targeting.model.scorer import Scorer
from targeting.serving.requests import RequestError, answer, with_nulls

#: the file MLflow runs to build the pyfunc when it loads a logged model (models from code)
ENTRY_FILE = Path(__file__).with_name("entry.py")


class TargetingPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow's contract: `load_context` builds the `Scorer`, `predict` answers a request with it."""

    scorer: Scorer

    def load_context(self, context: Any) -> None:
        from targeting.history import _compiled as history_loops
        from targeting.model import _compiled as model_loops

        model = TargetingModel.load(context.artifacts["model_dir"])
        _ = model.forest  # the trees parsed for the compiled walker while loading, not on the first request
        model_loops.load()  # and the compiled loops loaded (from numba's cache) before the first request
        history_loops.load()
        config = getattr(context, "model_config", None) or {}
        if os.environ.get(NO_HISTORY_ENV, "") not in ("", "0"):
            history = HistorySource.none(model.meta.target)
        else:  # a missing folder is an error at the first answer (`targeting serve` checks it before starting)
            history = HistorySource(os.environ.get(HISTORY_ENV) or config.get("history_dir") or "", model.meta.target)
        self.scorer = Scorer(model, history)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Per row: calibrated risk, its rank within the request, and the top reasons (TreeSHAP); a request
        with rows that break the contract is refused with every problem listed (`requests.answer`)."""
        try:
            return with_nulls(answer(self.scorer, pd.DataFrame(model_input)))
        except RequestError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None


def load_scorer(model_uri: str, history: Path | None = None, no_history: bool = False) -> tuple[Scorer, str]:
    """The logged model's scorer (loaded without unpickling) and the model URI resolved to a version; with
    `history`, answering from that folder instead of the one recorded with the model, with `no_history`
    from no history at all. The history folder it will answer from must exist (one clear error if not)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    tracking.setup()
    resolved = model_uri
    try:
        m = re.fullmatch(r"models:/([^/@]+)@(.+)", model_uri)
        if m:
            resolved = (
                f"models:/{m.group(1)}/{MlflowClient().get_model_version_by_alias(*m.groups()).version}"
            )
        scorer = open_scorer(resolved)
    except MlflowException as exc:
        raise ModelNotFoundError(f"--model {model_uri}: {str(exc).splitlines()[0]}") from None
    if history is not None:
        scorer.use_history(require_history(history))
    elif no_history:
        scorer.history = HistorySource.none(scorer.model.meta.target)
    else:
        scorer.history.check()
    return scorer, resolved


def open_scorer(model_uri: str) -> Scorer:
    """The scorer of a logged model, by a URI that needs no alias resolved (a Spark executor's way in)."""
    python_model = tracking.load_pyfunc(model_uri).unwrap_python_model()
    if not isinstance(python_model, TargetingPyfunc):
        raise ModelNotFoundError(f"--model {model_uri}: not a targeting model ({type(python_model).__name__})")
    return python_model.scorer


def signature() -> ModelSignature:
    """The served model's signature, from the data contract (not inferred from an example, which would
    make every column that happened to be filled "required"): required columns are typed (times as
    ISO 8601 strings); optional non-text columns are `Any`, because MLflow refuses to put a missing value
    in a long or boolean column, and `coerce_declarations` checks them with a message naming the column."""
    from mlflow.models import infer_signature
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
