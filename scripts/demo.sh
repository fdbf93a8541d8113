#!/usr/bin/env bash
# The main job end to end on embedded data; `make demo` runs this inside the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
T=.venv/bin/targeting
KCS=../shared/external/customs-declaration-datasets
WORLD=data/raw/sim-small
HISTORY=data/history/sim-small

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

DAYS=($(ls "$WORLD"/declarations/*.parquet))
DAY_N=${DAYS[-2]}       # the loop's day N and day N+1: the world's last two days
DAY_NEXT=${DAYS[-1]}
N=$(basename "$DAY_N" .parquet)
NEXT=$(basename "$DAY_NEXT" .parquet)

echo "== 3. the history: every day of the world before $N (a backfill, unless it is there), indexed"
if [ ! -f "$HISTORY/history.json" ]; then
  $T history add "$HISTORY" --declarations "$WORLD/declarations.parquet" --outcomes "$WORLD/inspections.parquet" \
    --before "$N"
fi
$T history index "$HISTORY"

echo "== 4. train on the history's inspected declarations (last 14 days held out), register as challenger"
$T train --history "$HISTORY" --register

echo "== 5. promote the challenger if it is shown better than the champion on days neither saw"
$T promote

echo "== 6. day $N: score its manifest with the champion (budgets per mode, 20 % of each kept for exploration)"
$T score "$DAY_N" --budget SEA=5%,AIR=3%,POST=2%,EXPRESS=2% --explore 20% --out "data/processed/$N" --no-report

echo "== 7. the world inspects what was selected; day $N and those outcomes join the history"
$T examine "$WORLD" --scores "data/processed/$N/scores.parquet" --out "data/interim/inspections-$N.parquet"
$T history add "$HISTORY" --declarations "$DAY_N" --outcomes "data/interim/inspections-$N.parquet" \
  --scores "data/processed/$N/scores.parquet"

echo "== 8. day $NEXT: score it with day $N in the history, and write the review report"
$T score "$DAY_NEXT" --budget SEA=5%,AIR=3%,POST=2%,EXPRESS=2% --explore 20% --out "data/processed/$NEXT"

echo
echo "Review report: $(pwd)/data/processed/$NEXT/report.html"
echo "Scores:        $(pwd)/data/processed/$NEXT/scores.csv (and rejects.csv)"
echo "History:       $(pwd)/$HISTORY (history.json lists its committed days)"
echo "MLflow store:  $(pwd)/mlflow.db   UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///$(pwd)/mlflow.db --host 127.0.0.1"
