#!/usr/bin/env bash
# The CIFAR-10 CPU study (docs/results/cifar10-cpu.md), resumable from git on any machine.
#   benchmarks/cifar10_study.sh run      # prepare the data if needed, restore the store, sweep (hours)
#   benchmarks/cifar10_study.sh export   # snapshot the store into results/, regenerate every file
#   STUDY_CPUS=1 benchmarks/cifar10_study.sh run   # pinned to core 1 (one torch thread), niced, so
#                                                  # the machine stays usable for other work
# The live MLflow store stays out of git ($STUDY_STORE); `export` copies it consistently (sqlite
# backup) to results/cifar10-cpu/mlflow.db, which `run` restores on a fresh machine. Finished runs
# are skipped by their run_key (store and results/cifar10-cpu/runs.csv), so `run` resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ANOBENCH_DATA_ROOT:-/tmp/anodata}
STORE=${STUDY_STORE:-.anobench/cifar10-cpu/mlflow.db}
SNAPSHOT=results/cifar10-cpu/mlflow.db
PY=${PYTHON:-.venv/bin/python}
case "${1:-}" in
  run)
    [ -d "$DATA/cifar-10-batches-py" ] || "$PY" ../shared/data/prepare.py "$DATA"
    mkdir -p "$(dirname "$STORE")"
    if [ ! -f "$STORE" ] && [ -f "$SNAPSHOT" ]; then cp "$SNAPSHOT" "$STORE"; fi
    ANOBENCH_DATA_ROOT=$DATA exec nice ${STUDY_CPUS:+taskset -c "$STUDY_CPUS"} "$PY" -m anobench.cli sweep benchmarks/cifar10-cpu.toml --workers 1 \
      --tracking-uri "sqlite:///$STORE" --no-log-model
    ;;
  export)
    "$PY" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' "$STORE" "$SNAPSHOT"
    "$PY" -m anobench.cli leaderboard --experiment cifar10-cpu --tracking-uri "sqlite:///$SNAPSHOT" --reference firm
    "$PY" benchmarks/manifest.py --experiment cifar10-cpu --tracking-uri "sqlite:///$SNAPSHOT" \
      --sweep benchmarks/cifar10-cpu.toml --data "$DATA/cifar-10-batches-py"
    ;;
  *)
    echo "usage: $0 run|export" >&2
    exit 2
    ;;
esac
