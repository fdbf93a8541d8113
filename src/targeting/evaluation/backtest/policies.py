"""The closed loop's policies and how a model policy selects: through the daily job's scoring and decisions.

- RULE-only: the legacy service alone, the world's own rule taking its share of each mode's budget;
- eps=E: the champion takes the rule's share of the budget; the daily job's decisions split it into
  INSPECT (the top 1 - E) and EXPLORE (E drawn uniformly from the rest, propensity recorded);
- ORACLE-loop: the same loop, its models trained on the ground truth of every declaration seen so far
  (their as-of history still comes from the outcomes the loop recorded): the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from targeting.model.scorer import Scorer
from targeting.scoring.batch import score_batch
from targeting.scoring.decisions import Budget
from targeting.simulate.world import Choice

RULE, MODEL, ORACLE = "rule", "model", "oracle"


@dataclass(frozen=True)
class PolicySpec:
    name: str
    kind: str  # RULE, MODEL or ORACLE
    explore: float = 0.0

    @property
    def slug(self) -> str:
        return self.name.lower().replace("=", "-").replace(".", "")


def policy_specs(epsilons: tuple[float, ...], oracle: bool = True, rule: bool = True) -> list[PolicySpec]:
    """RULE-only, one model policy per exploration share, and ORACLE-loop (at the largest share, or 0.1)."""
    specs = [PolicySpec("RULE-only", RULE)] if rule else []
    specs += [PolicySpec(f"eps={e:g}", MODEL, e) for e in epsilons]
    if oracle:
        specs.append(PolicySpec("ORACLE-loop", ORACLE, 0.1))
    return specs


class JobChooser:
    """Selects the model's share of a day through the daily job's scoring and decisions (`score_batch`):
    each mode's capacity as a count budget, the exploration share as `--explore`. Keeps the day's scores
    (the decisions and propensities) for the loop's records."""

    def __init__(self, scorer: Scorer, model_uri: str, explore: float, seed: int) -> None:
        self.scorer, self.model_uri, self.explore, self.seed = scorer, model_uri, explore, seed
        self.day = 0
        self.scores: pd.DataFrame | None = None

    def choose(self, declarations: pd.DataFrame, capacity: dict[str, int]) -> Choice:
        budgets = {mode: Budget(float(k), percent=False) for mode, k in capacity.items()}
        result = score_batch(declarations, self.scorer, self.model_uri, budgets, self.explore,
                             seed=self.seed * 100_003 + self.day)  # fmt: skip
        scores = result.scores
        self.scores = scores
        position = pd.Index(declarations["declaration_id"].astype(str)).get_indexer(scores["declaration_id"].astype(str))
        reason = np.full(len(declarations), None, dtype=object)
        decision = scores["decision"].to_numpy()
        reason[position[decision == "INSPECT"]] = "MODEL"
        reason[position[decision == "EXPLORE"]] = "RANDOM"
        propensity = np.zeros(len(declarations))
        propensity[position] = scores["selection_propensity"].to_numpy(dtype=float)
        return Choice(reason, propensity)
