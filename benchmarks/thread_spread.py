"""How much a result moves with the torch thread count, against how much it moves with the seed
(docs/reproducibility.md). Each run is one fresh process, so the thread count is set before torch
starts; the same configuration (one run key) runs at every thread count.

Prints one row per (class, seed) with the kNN (k=5) AUROC at each thread count, then the mean and
largest |difference| between thread counts beside the standard deviation over seeds at one thread
count. Writes the rows as CSV with ``--output``.

    ANOBENCH_DATA_ROOT=/tmp/anodata python benchmarks/thread_spread.py --dataset cifar10 \\
        --preset quick --precision fp32 --classes 0 --seeds 0,1 --threads 1,2
    python benchmarks/thread_spread.py --dataset digits --preset smoke --classes 0 --seeds 0-4
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys

import pandas as pd

from anobench.sweep import parse_int_list, parse_name_list

ONE_RUN = """
import dataclasses, json, sys, torch
from anobench.config import RunConfig, preset
from anobench.runner import run_experiment
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
train = preset(args["preset"])
if args["precision"]:
    train = dataclasses.replace(train, precision=args["precision"])
config = RunConfig(objective=args["objective"], scorers=["knn"], dataset=args["dataset"],
                   normal_class=args["normal_class"], seed=args["seed"], device="cpu",
                   preset=args["preset"], train=train)
result = run_experiment(config)
print(json.dumps({"run_key": config.key(), "auroc": result.scorer_results[0].metrics["auroc"]}))
"""


def one_run(**args: object) -> dict[str, object]:
    """AUROC and run key of one run in a fresh process at ``args["threads"]`` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args["threads"])}
    done = subprocess.run([sys.executable, "-c", ONE_RUN, json.dumps(args)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--objective", default="firm")
    parser.add_argument("--classes", default="0")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--precision", default=None, help="override the preset's precision (fp32 on CPUs "
                        "without native bf16: docs/performance.md)")
    parser.add_argument("--output", default=None, help="also write the rows to this CSV")
    args = parser.parse_args()
    threads = parse_int_list("--threads", args.threads)
    rows = []
    for normal_class, seed in itertools.product(parse_name_list(args.classes), parse_int_list("--seeds", args.seeds)):
        row: dict[str, object] = {"normal_class": normal_class, "seed": seed}
        for count in threads:
            result = one_run(threads=count, objective=args.objective, dataset=args.dataset,
                             normal_class=normal_class, seed=seed, preset=args.preset, precision=args.precision)
            row["run_key"] = result["run_key"]
            row[f"auroc_t{count}"] = result["auroc"]
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    columns = [f"auroc_t{count}" for count in threads]
    diffs = (table[columns].max(axis=1) - table[columns].min(axis=1)).abs()
    seed_sd = table.groupby("normal_class")[columns[0]].std(ddof=1).mean()
    print(f"\n{args.dataset} {args.preset} {args.objective}, {len(table)} (class, seed) pairs, "
          f"threads {', '.join(map(str, threads))}:")
    print(f"  |AUROC difference across thread counts|: mean {diffs.mean():.4f}, max {diffs.max():.4f}")
    print(f"  standard deviation across seeds at {threads[0]} thread(s), mean over classes: {seed_sd:.4f}")
    if args.output:
        table.to_csv(args.output, index=False)


if __name__ == "__main__":
    main()
