"""The Ray executor runs the same run function as Ray tasks, here on a local Ray instance."""

from __future__ import annotations

import shutil
import tempfile

import mlflow
import pandas as pd
import pytest

from anobench.scheduler import SweepOptions, run_sweep
from anobench.sweep import SweepSpec, expand

ray = pytest.importorskip("ray")


@pytest.fixture()
def local_ray():
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False, _temp_dir=temp)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_executor_completes_a_sweep_and_a_second_one_runs_nothing(tmp_path, local_ray):
    from anobench.ray_executor import RayExecutor

    configs = expand(SweepSpec(objectives=("firm", "simclr"), scorers=("knn", "mahalanobis"), presets=("smoke",),
                               run={"steps": 3, "device": "cpu", "eval_checkpoints": 2}))
    options = SweepOptions.resolve("ray", output_dir=tmp_path / "results")
    started = []

    class Events:
        def started(self, key, label, worker):
            started.append(worker)

        def progress(self, key, step, total):
            pass

        def finished(self, outcome):
            pass

    report = run_sweep(configs, options, RayExecutor(), Events())
    assert [o.error for o in report.failed] == [] and len(report.outcomes) == 2
    assert started and all(w.startswith("ray:") for w in started)
    client = mlflow.tracking.MlflowClient(tracking_uri=options.tracking_uri)
    exp = client.get_experiment_by_name("ray")
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
    assert sorted(r.data.tags["run_key"] for r in runs) == sorted(c.key() for c in configs)
    rows = pd.read_csv(options.results_csv)
    assert len(rows) == 4 and rows["auroc"].between(0, 1).all()

    again = run_sweep(configs, options, RayExecutor())
    assert again.outcomes == [] and sorted(again.skipped) == sorted(c.key() for c in configs)
