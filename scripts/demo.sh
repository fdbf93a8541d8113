#!/usr/bin/env bash
# The main job end to end on embedded data; `make demo` runs this inside the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
T=.venv/bin/targeting
KCS=../shared/external/customs-declaration-datasets
WORLD=data/raw/sim-small

echo "== 1. generate the simulated customs world (preset small, seed 7) unless it is already there"
if [ ! -f "$WORLD/manifest.json" ]; then
  $T simulate --preset small --seed 7 --out "$WORLD" --daily
fi
$T validate "$WORLD/inspections.parquet" --table inspections --declarations "$WORLD/declarations.parquet"

echo "== 2. import the public KCS declarations into the data contract and validate the result"
$T import-kcs "$KCS/df_syn_train_eng.csv" --out data/raw/kcs-train
$T validate data/raw/kcs-train/declarations.parquet --out data/interim/kcs-train-validated
$T validate data/raw/kcs-train/inspections.parquet --table inspections \
  --declarations data/raw/kcs-train/declarations.parquet

echo "== 3. train on the world's inspected declarations (validation: its last 60 days), log to MLflow, register as challenger"
$T train --declarations "$WORLD/declarations.parquet" --inspections "$WORLD/inspections.parquet" --register

echo "== 4. promote the challenger if it beats the champion on the same holdout"
$T promote

echo "== 5. index the history folder for as-of features (rerun whenever its declarations or inspections change)"
$T history-index "$WORLD"

echo "== 6. score the last day's manifest with the champion: budgets per mode, 20 % of each kept for exploration"
LAST_DAY=$(ls "$WORLD"/declarations/*.parquet | tail -1)
DAY=$(basename "$LAST_DAY" .parquet)
$T score "$LAST_DAY" --model models:/targeting@champion --history "$WORLD" \
  --budget SEA=5%,AIR=3%,POST=2%,EXPRESS=2% --explore 20% --out "data/processed/$DAY"

echo
echo "Review report: $(pwd)/data/processed/$DAY/report.html"
echo "Scores:        $(pwd)/data/processed/$DAY/scores.csv (and rejects.csv)"
echo "MLflow store:  $(pwd)/mlflow.db   UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///$(pwd)/mlflow.db --host 127.0.0.1"
