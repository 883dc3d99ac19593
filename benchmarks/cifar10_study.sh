#!/usr/bin/env bash
# A CIFAR-10 study, resumable from git on any machine. STUDY names it (default cifar10-cpu, the
# objective comparison of docs/results/cifar10-cpu.md; cifar10-selection is the label-free
# selection study of docs/results/label-free-selection.md): sweep file benchmarks/$STUDY.toml, experiment $STUDY,
# results in results/$STUDY/.
#   benchmarks/cifar10_study.sh run      # prepare the data if needed, restore the store, sweep (hours)
#   benchmarks/cifar10_study.sh export   # snapshot the store into results/, regenerate every file
#   STUDY_CPUS=1 benchmarks/cifar10_study.sh run   # pinned to core 1 (one torch thread), niced, so
#                                                  # the machine stays usable for other work
#   STUDY=cifar10-selection STUDY_CPUS=0 benchmarks/cifar10_study.sh run &   # two sweeps, one per
#   STUDY=cifar10-selection STUDY_CPUS=1 benchmarks/cifar10_study.sh run &   # core, share the work
# The live MLflow store stays out of git ($STUDY_STORE); `export` copies it consistently (sqlite
# backup) to results/$STUDY/mlflow.db, which `run` restores on a fresh machine. Finished runs
# are skipped by their run_key (store and results/$STUDY/runs.csv), so `run` resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ANOBENCH_DATA_ROOT:-/tmp/anodata}
STUDY=${STUDY:-cifar10-cpu}
STORE=${STUDY_STORE:-.anobench/$STUDY/mlflow.db}
SNAPSHOT=results/$STUDY/mlflow.db
PY=${PYTHON:-.venv/bin/python}
case "${1:-}" in
  run)
    [ -d "$DATA/cifar-10-batches-py" ] || "$PY" ../shared/data/prepare.py "$DATA"
    mkdir -p "$(dirname "$STORE")"
    if [ ! -f "$STORE" ] && [ -f "$SNAPSHOT" ]; then cp "$SNAPSHOT" "$STORE"; fi
    ANOBENCH_DATA_ROOT=$DATA exec nice ${STUDY_CPUS:+taskset -c "$STUDY_CPUS"} "$PY" -m anobench.cli sweep "benchmarks/$STUDY.toml" --workers 1 \
      --tracking-uri "sqlite:///$STORE" --no-log-model
    ;;
  export)
    mkdir -p "$(dirname "$SNAPSHOT")"
    "$PY" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' "$STORE" "$SNAPSHOT"
    "$PY" -m anobench.cli leaderboard --experiment "$STUDY" --tracking-uri "sqlite:///$SNAPSHOT" --reference firm
    "$PY" benchmarks/manifest.py --experiment "$STUDY" --tracking-uri "sqlite:///$SNAPSHOT" \
      --sweep "benchmarks/$STUDY.toml" --data "$DATA/cifar-10-batches-py"
    ;;
  *)
    echo "usage: $0 run|export" >&2
    exit 2
    ;;
esac
