"""Write the provenance manifest of an experiment's results folder.

The manifest records what produced the numbers: the anobench commits of the finished runs (from
their MLflow tags, with counts), the library versions, the SHA-256 of every data file the runs
read, the sweep file, and the machine.

    python benchmarks/manifest.py --experiment cifar10-cpu \
        --tracking-uri sqlite:///results/cifar10-cpu/mlflow.db \
        --sweep benchmarks/cifar10-cpu.toml --data /tmp/anodata/cifar-10-batches-py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "torchvision", "numpy", "pandas", "scipy", "scikit-learn", "mlflow", "faiss-cpu", "typer")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_provenance(tracking_uri: str, experiment: str) -> dict[str, object]:
    """Counts of the finished runs' anobench commits and torch versions (MLflow tags)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"error: no experiment {experiment!r} in {tracking_uri}")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'", max_results=50000)
    keys = {r.data.tags.get("run_key") for r in runs}
    return {
        "finished_runs": len(keys),
        "anobench_commits": dict(Counter(r.data.tags.get("anobench.git_commit", "unknown") for r in runs)),
        "torch_versions": dict(Counter(r.data.tags.get("torch.version", "unknown") for r in runs)),
    }


def versions() -> dict[str, str]:
    """Installed versions of the libraries the results depend on."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--sweep", type=Path, required=True, help="The sweep file of the experiment.")
    parser.add_argument("--data", type=Path, required=True, help="Folder of the data files the runs read.")
    parser.add_argument("--output-dir", type=Path, default=Path("results"))
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"error: data folder {args.data} does not exist")
    manifest = {
        "experiment": args.experiment,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **run_provenance(args.tracking_uri, args.experiment),
        "libraries": versions(),
        "data": {"folder": args.data.name,
                 "sha256": {p.name: sha256(p) for p in sorted(args.data.iterdir()) if p.is_file()}},
        "sweep_file": {"path": str(args.sweep), "sha256": sha256(args.sweep), "text": args.sweep.read_text()},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }
    path = args.output_dir / args.experiment / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
