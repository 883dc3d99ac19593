"""The GPU path in one go: the checks of ``benchmarks/gpu_check.sh`` (issue 21).

Writes ``gpu_check.json`` (every figure) and ``gpu_check.md`` (a short table) to ``--out``:

- every objective for 50 steps in bf16 and fp16 (model-only and pipeline images/s, peak memory);
- model-only against pipeline images/s for the quick and paper presets (``anobench bench``'s
  :func:`anobench.bench.run_bench`);
- aggregate images/s of 1, 2, 4 and 8 quick runs packed on one GPU (separate processes started
  together; each runs ``run_bench``, whose model-only and pipeline steps both count);
- exact kNN on the GPU against the CPU (identical neighbours required);
- a two-process DDP run (nccl, SyncBatchNorm) when two GPUs are visible;
- the suite's CUDA-only tests (``-k cuda`` over the test files that skip without CUDA).

Peak memory is ``torch.cuda.max_memory_allocated`` per check on a GPU, the process's peak
resident memory on the CPU. ``--dry-run`` runs the same steps on the CPU at toy size (fp16, the
DDP run and the CUDA tests, which need a GPU, are listed as skipped; the tests are collected).
A failing check is recorded with its error and the script goes on; the exit code is 1 if any
check failed.

Example:
    >>> sizes(dry_run=True).packs
    (1, 2)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
CUDA_TEST_MARK = "skipif(not torch.cuda.is_available()"


@dataclass(frozen=True)
class Sizes:
    """How big each check is: the real sizes on a GPU, toy sizes for ``--dry-run``."""

    device: str
    objective_steps: int
    bench_steps: int
    precisions: tuple[str, ...]
    n_normal: int | None
    packs: tuple[int, ...]
    knn_bank: int
    knn_queries: int
    knn_dim: int
    toy: bool


def sizes(dry_run: bool) -> Sizes:
    """The real sizes, or toy sizes on the CPU for a dry run."""
    if dry_run:
        return Sizes("cpu", 2, 2, ("bf16",), 64, (1, 2), 500, 50, 16, toy=True)
    return Sizes("cuda", 50, 20, ("bf16", "fp16"), None, (1, 2, 4, 8), 50_000, 5_000, 128, toy=False)


def train_settings(preset_name: str, size: Sizes, **changes: Any) -> Any:
    """The preset's training settings with ``changes``; a toy model and batch for a dry run."""
    from anobench.config import preset

    toy = {"width": 0.125, "batch_size": 16, "head_hidden": 32, "compile": False} if size.toy else {}
    return dataclasses.replace(preset(preset_name), **{**toy, **changes})


def reset_peak(device: str) -> None:
    """Start a fresh peak-memory measurement (GPU only; the CPU's peak RSS never resets)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: str) -> float:
    """Peak device memory since :func:`reset_peak` (GPU), or the process's peak RSS (CPU), MiB."""
    from anobench.bench import peak_rss_mb

    return torch.cuda.max_memory_allocated() / (1 << 20) if device == "cuda" else peak_rss_mb()


def checked(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn``'s figures with ``ok``; a failure is recorded (error and all), never raised."""
    try:
        return {"check": name, "ok": True, **fn()}
    except Exception as error:  # a check script reports every failure and goes on
        return {"check": name, "ok": False, "error": f"{type(error).__name__}: {error}"}


def bench(size: Sizes, train: Any, preset_name: str, objective: str, steps: int) -> dict[str, Any]:
    """Model-only and pipeline images/s of one setting, with its peak memory."""
    from anobench.bench import BenchConfig, run_bench

    reset_peak(size.device)
    result = run_bench(BenchConfig(train=train, preset=preset_name, objective=objective, device=size.device,
                                   steps=steps, n_normal=size.n_normal, augment=False, baseline=False))
    return {"model_img_s": round(result.model_img_s, 1), "pipeline_img_s": round(result.pipeline_img_s, 1),
            "efficiency": round(result.efficiency, 3), "peak_mb": round(peak_mb(size.device), 1)}


def check_objectives(size: Sizes) -> list[dict[str, Any]]:
    """Every objective in every precision, ``objective_steps`` steps of the quick preset."""
    from anobench.objectives import list_objectives

    rows = []
    for objective in list_objectives():
        for precision in ("bf16", "fp16"):
            name = f"objective {objective} {precision}"
            if precision not in size.precisions:
                rows.append({"check": name, "ok": None, "skipped": "fp16 needs CUDA"})
                continue
            train = train_settings("quick", size, precision=precision)
            rows.append(checked(name, lambda: bench(size, train, "quick", objective, size.objective_steps)))
    return rows


def check_presets(size: Sizes) -> list[dict[str, Any]]:
    """Model-only against pipeline images/s for the quick and paper presets."""
    return [checked(f"preset {name}", lambda: bench(size, train_settings(name, size), name, "firm", size.bench_steps))
            for name in ("quick", "paper")]


def _packed_run(size: Sizes, start: Any, results: Any) -> None:
    from anobench.bench import BenchConfig, run_bench

    train = train_settings("quick", size)
    cfg = BenchConfig(train=train, device=size.device, steps=size.bench_steps, n_normal=size.n_normal,
                      augment=False, baseline=False)
    torch.zeros(1, device=size.device)  # CUDA initialised before the clock starts
    start.wait()
    began = time.perf_counter()
    run_bench(cfg)
    ended = time.perf_counter()
    views = 2 * train.batch_size * 2 * (cfg.warmup_steps + cfg.steps)  # pipeline and model-only steps
    results.put((began, ended, views, peak_mb(size.device)))


def packed_throughput(size: Sizes, runs: int) -> dict[str, Any]:
    """Aggregate images/s of ``runs`` quick runs started together, one process each."""
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(runs), ctx.Queue()
    processes = [ctx.Process(target=_packed_run, args=(size, start, results)) for _ in range(runs)]
    for process in processes:
        process.start()
    done = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    wall = max(d[1] for d in done) - min(d[0] for d in done)
    return {"runs": runs, "aggregate_img_s": round(sum(d[2] for d in done) / wall, 1),
            "peak_mb": round(max(d[3] for d in done), 1), "wall_s": round(wall, 2)}


def check_packing(size: Sizes) -> list[dict[str, Any]]:
    """Aggregate images/s for each packing of :attr:`Sizes.packs`."""
    return [checked(f"packed quick x{runs}", lambda: packed_throughput(size, runs)) for runs in size.packs]


def knn_agreement(size: Sizes) -> dict[str, Any]:
    """Exact top-5 neighbours on ``size.device`` against the CPU; raises unless identical."""
    from anobench.knn import knn_search

    gen = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(size.knn_bank, size.knn_dim, generator=gen), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(size.knn_queries, size.knn_dim, generator=gen), dim=1)
    began = time.perf_counter()
    cpu_sims, cpu_ids = knn_search(queries, bank, 5, backend="torch")
    cpu_s = time.perf_counter() - began
    reset_peak(size.device)
    began = time.perf_counter()
    dev_sims, dev_ids = knn_search(queries.to(size.device), bank.to(size.device), 5, backend="auto")
    dev_ids = dev_ids.cpu()
    dev_s = time.perf_counter() - began
    mismatched = int((dev_ids != cpu_ids).any(dim=1).sum())
    if mismatched:
        raise AssertionError(f"{mismatched} of {size.knn_queries} queries got other neighbours on {size.device}")
    return {"bank": size.knn_bank, "queries": size.knn_queries, "dim": size.knn_dim, "identical": True,
            "max_sim_diff": float((dev_sims.cpu() - cpu_sims).abs().max()), "device_s": round(dev_s, 4),
            "cpu_s": round(cpu_s, 4), "peak_mb": round(peak_mb(size.device), 1)}


def ddp_run(size: Sizes, out: Path) -> dict[str, Any]:
    """One quick run over two GPUs with torchrun (nccl, SyncBatchNorm); skipped below two GPUs."""
    gpus = torch.cuda.device_count() if size.device == "cuda" else 0
    if gpus < 2:
        return {"check": "ddp nccl x2", "ok": None, "skipped": f"{gpus} GPU(s) visible; two are needed"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "anobench.cli", "run", "--preset", "quick", "--steps", "50", "--device", "cuda",
               "--experiment", "gpu-check-ddp", "--tracking-uri", f"sqlite:///{out / 'ddp-mlflow.db'}",
               "--output-dir", str(out / "ddp-results")]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=300, check=False)
    return {"check": "ddp nccl x2", "ok": done.returncode == 0, "wall_s": round(time.perf_counter() - began, 1),
            "error": None if done.returncode == 0 else done.stderr[-2000:]}


def cuda_test_files() -> list[str]:
    """The test files with tests that skip without CUDA."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                  if CUDA_TEST_MARK in p.read_text())


def cuda_tests(size: Sizes) -> dict[str, Any]:
    """Run the suite's CUDA-only tests (a dry run only collects them)."""
    files = cuda_test_files()
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", "cuda", *files]
    if size.toy:
        command.append("--collect-only")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    return {"check": "CUDA-only tests" + (" (collected)" if size.toy else ""), "ok": done.returncode == 0,
            "files": files, "summary": summary}


def markdown(report: dict[str, Any]) -> str:
    """The short table: one row per check."""
    lines = [f"GPU check on {report['device']} (torch {report['torch']}{', dry run' if report['dry_run'] else ''})",
             "", "| check | result | images/s | peak MiB | notes |", "|---|---|---|---|---|"]
    for row in report["checks"]:
        result = {True: "ok", False: "FAILED", None: "skipped"}[row["ok"]]
        rate = row.get("aggregate_img_s") or (
            f"{row['model_img_s']} model / {row['pipeline_img_s']} pipeline" if "model_img_s" in row else "")
        notes = row.get("skipped") or row.get("summary") or (row.get("error") or "")[:120]
        if "identical" in row:
            notes = f"identical neighbours, {report['device']} {row['device_s']} s vs CPU {row['cpu_s']} s"
        lines.append(f"| {row['check']} | {result} | {rate} | {row.get('peak_mb', '')} | {notes} |")
    return "\n".join(lines) + "\n"


def run_checks(dry_run: bool, out: Path) -> dict[str, Any]:
    """Every check; the report that :func:`main` writes."""
    size = sizes(dry_run)
    if not dry_run and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device is visible; use --dry-run to check the script on the CPU")
    began = time.perf_counter()
    checks = [*check_objectives(size), *check_presets(size), *check_packing(size),
              checked("exact kNN", lambda: knn_agreement(size)), ddp_run(size, out), cuda_tests(size)]
    return {"device": torch.cuda.get_device_name(0) if size.device == "cuda" else "cpu",
            "gpus": torch.cuda.device_count(), "torch": torch.__version__, "dry_run": dry_run,
            "wall_s": round(time.perf_counter() - began, 1), "checks": checks}


def main(argv: list[str] | None = None) -> int:
    """Run the checks, write ``gpu_check.json`` and ``gpu_check.md``; 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at toy size")
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="folder of the JSON and the table")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = run_checks(args.dry_run, out)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / "gpu_check.md").write_text(table)
    print(table, end="")
    return 1 if any(row["ok"] is False for row in report["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
