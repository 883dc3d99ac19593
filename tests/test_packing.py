"""Several runs per GPU: slots, the auto probe, out-of-memory retries, skipping, and Ray's
resource requests, all on the CPU through a fake device inventory and fake runs."""

from __future__ import annotations

import json
import sys
import types

import pytest
from typer.testing import CliRunner

from anobench.cli import app
from anobench.errors import ConfigError
from anobench.packing import (
    CUDA_CONTEXT_BYTES,
    DeviceInventory,
    Probe,
    choose_runs_per_device,
    parse_runs_per_device,
)
from anobench.scheduler import LocalExecutor, RunOutcome, SweepOptions, plan, run_sweep, worker_slots
from anobench.sweep import SweepSpec, expand, spec_from_toml

GIB = 1 << 30


def configs(seeds: int) -> list:
    return expand(SweepSpec(seeds=tuple(range(seeds)), presets=("smoke",)))


class Recorder:
    """Events kept in lists."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.finished: list[RunOutcome] = []

    def started_(self, key: str, label: str, worker: str) -> None:
        self.started.append((key, worker))

    def progress(self, key: str, step: int, total: int) -> None:
        pass

    def finished_(self, outcome: RunOutcome) -> None:
        self.finished.append(outcome)


def recorder() -> tuple[Recorder, types.SimpleNamespace]:
    rec = Recorder()
    return rec, types.SimpleNamespace(started=rec.started_, progress=rec.progress, finished=rec.finished_)


def test_two_gpus_times_three_give_six_pinned_slots_with_split_threads():
    slots = worker_slots(None, gpus=2, cpus=12, runs_per_device=3)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1"] * 3
    assert [s.name for s in slots] == ["gpu0.0", "gpu1.0", "gpu0.1", "gpu1.1", "gpu0.2", "gpu1.2"]
    assert {s.threads for s in slots} == {2} and {s.env["OMP_NUM_THREADS"] for s in slots} == {"2"}
    assert [s.name for s in worker_slots(None, gpus=2, cpus=12)] == ["gpu0", "gpu1"]


def test_auto_picks_n_from_the_probe_capped_by_memory_and_says_why():
    probe = Probe(peak_bytes=20 * GIB - CUDA_CONTEXT_BYTES, step_s=0.04, total_bytes=80 * GIB, device_name="Fake")
    lines: list[str] = []
    probed: list[str] = []

    def fake_probe(config):
        probed.append(config.preset)
        return probe

    executor = LocalExecutor(inventory=DeviceInventory(gpus=2, cpus=32), probe=fake_probe, say=lines.append)
    grid = expand(SweepSpec(presets=("smoke", "quick")))
    slots = executor.packing(grid)
    assert probed == ["quick"]  # the heaviest settings
    assert len(slots) == 6 and [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1"] * 3  # 72 GiB / 20 GiB
    assert len(lines) == 1 and lines[0].startswith("3 runs per GPU") and "bound by memory" in lines[0]
    assert choose_runs_per_device(probe, cpus_per_gpu=2).runs == 2
    huge = Probe(peak_bytes=100 * GIB, step_s=1.0, total_bytes=80 * GIB, device_name="Fake")
    assert choose_runs_per_device(huge, cpus_per_gpu=8).runs == 1


def test_auto_with_workers_or_without_gpus_never_probes():
    def no_probe(config):
        raise AssertionError("probed on a CPU")

    executor = LocalExecutor(workers=3, inventory=DeviceInventory(gpus=0, cpus=6), probe=no_probe)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in executor.packing(configs(1))] == [""] * 3
    on_gpus = LocalExecutor(workers=2, inventory=DeviceInventory(gpus=2, cpus=6), probe=no_probe)
    assert [s.name for s in on_gpus.packing(configs(1))] == ["gpu0", "gpu1"]  # --workers keeps its meaning


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"runs_per_device": 2, "inventory": DeviceInventory(gpus=0, cpus=4)}, "--runs-per-device 2 needs a GPU"),
    ({"runs_per_device": 2, "workers": 4, "inventory": DeviceInventory(gpus=1, cpus=4)}, "--workers 4 and --runs-per-device 2"),
])
def test_runs_per_device_refused_where_it_means_nothing(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LocalExecutor(**kwargs)


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True, ""])
def test_bad_runs_per_device_is_named(bad):
    with pytest.raises(ConfigError, match="runs_per_device must be 'auto' or an integer >= 1, got"):
        parse_runs_per_device(bad)


def test_sweep_file_key_and_cli_flag(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[grid]\npresets = ["smoke"]\n[run]\nruns_per_device = 4\n')
    spec = spec_from_toml(path)
    assert spec.run["runs_per_device"] == 4
    assert [c.key() for c in expand(spec)] == [c.key() for c in configs(1)]  # not part of the run key
    path.write_text('[grid]\npresets = ["smoke"]\n[run]\nruns_per_device = "many"\n')
    with pytest.raises(ConfigError, match="'many'"):
        spec_from_toml(path)
    result = CliRunner().invoke(app, ["sweep", "--preset", "smoke", "--runs-per-device", "2", "--device", "cpu"])
    assert result.exit_code != 0 and "--runs-per-device 2 needs a GPU" in result.output


def test_packed_sweep_runs_six_at_once_retries_oom_alone_and_skips_on_resume(tmp_path):
    import packing_helpers

    grid = configs(packing_helpers.PEERS + 3)
    options = SweepOptions.resolve("packed", output_dir=tmp_path / "results")
    packing_helpers.record_finished(grid[-1], options)  # finished by an earlier sweep
    lines: list[str] = []
    rec, events = recorder()
    executor = LocalExecutor(runs_per_device=3, inventory=DeviceInventory(gpus=2, cpus=12),
                             run_fn=packing_helpers.packed_run, say=lines.append)
    report = run_sweep(grid, options, executor, events)
    assert report.skipped == [grid[-1].key()] and len(report.outcomes) == len(grid) - 1

    attempts = [json.loads(p.read_text()) for p in sorted((options.output_dir / "attempts").glob("*.json"))]
    barrier = [a for a in attempts if a["seed"] < packing_helpers.PEERS]
    assert sorted(a["gpu"] for a in barrier) == ["0"] * 3 + ["1"] * 3  # six at once, three per GPU
    assert {a["threads"] for a in barrier} == {"2"}
    oom_key = grid[packing_helpers.PEERS].key()
    first, retry = sorted((a for a in attempts if a["seed"] == packing_helpers.PEERS), key=lambda a: a["start"])
    assert first["error"].startswith("OutOfMemoryError") and retry["error"] is None
    assert retry["start"] >= max(a["end"] for a in attempts if a is not retry)  # alone on its GPU
    assert retry["threads"] == "6"
    assert [w for k, w in rec.started if k == oom_key][-1] in ("gpu0", "gpu1")  # one worker per GPU
    assert any("ran out of GPU memory" in line and oom_key in line for line in lines)
    outcome = {o.key: o for o in report.outcomes}[oom_key]
    assert outcome.ok and outcome.retried_alone.startswith("OutOfMemoryError")
    assert [o.key for o in rec.finished].count(oom_key) == 1  # the held attempt is not reported
    assert [o.error for o in report.failed] == ["ValueError: planned"]  # a plain failure is not retried
    assert plan(grid, options).pending == [grid[packing_helpers.PEERS + 1]]  # a rerun runs only that one


class FakeRay:
    """Just enough of ``ray`` for :class:`RayExecutor.run`: every task runs when submitted."""

    def __init__(self, resources: dict[str, float], results) -> None:
        self.resources, self.results, self.requests = resources, results, []

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, fn):
        ray = self

        class Remote:
            def options(self, **options):
                def submit(*args):
                    ray.requests.append((fn.__name__, options))
                    return ray.results(fn.__name__, options, args)
                return types.SimpleNamespace(remote=submit)
        return Remote()

    def wait(self, refs, num_returns, timeout):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.value

    def cancel(self, ref, force):
        pass

    def kill(self, actor):
        pass


class Ref:
    def __init__(self, value) -> None:
        self.value = value


@pytest.fixture()
def fake_queue(monkeypatch):
    class Empty(Exception):
        pass

    class Queue:
        actor = None

        def get_nowait(self):
            raise Empty

    module = types.ModuleType("ray.util.queue")
    module.Empty, module.Queue = Empty, Queue
    monkeypatch.setitem(sys.modules, "ray.util.queue", module)


def test_ray_asks_for_a_gpu_share_and_retries_oom_with_a_whole_gpu(monkeypatch, fake_queue):
    import anobench.ray_executor as ray_executor

    grid = configs(3)
    oom_key = grid[1].key()

    def results(name, options, args):
        if name == "probe_run":
            return Ref(Probe(peak_bytes=6 * GIB, step_s=0.02, total_bytes=80 * GIB, device_name="Fake"))
        config = args[0]
        if config.key() == oom_key and options["num_gpus"] < 1:
            return Ref(RunOutcome(config.key(), "l", ok=False, error="OutOfMemoryError: CUDA out of memory."))
        return Ref(RunOutcome(config.key(), "l", ok=True))

    fake = FakeRay({"GPU": 2, "CPU": 8}, results)
    monkeypatch.setattr(ray_executor, "_ray", lambda: fake)
    lines: list[str] = []
    executor = ray_executor.RayExecutor(say=lines.append)
    outcomes = executor.run(grid, SweepOptions.resolve("ray"), types.SimpleNamespace(finished=lambda o: None))
    assert fake.requests[0] == ("probe_run", {"num_cpus": 1, "num_gpus": 1, "max_retries": 0})
    assert lines[0].startswith("4 runs per GPU") and "CPU cores per GPU" in lines[0]  # 8 CPUs / 2 GPUs
    tasks = [options for name, options in fake.requests if name == "_task"]
    assert tasks[:3] == [{"num_cpus": 1, "num_gpus": 0.25, "max_retries": 0}] * 3
    assert tasks[3:] == [{"num_cpus": 1, "num_gpus": 1, "max_retries": 0}]  # the retry, alone
    assert executor.workers == 8 and all(o.ok for o in outcomes)
    assert [o.retried_alone is not None for o in outcomes] == [False, True, False]

    fixed = ray_executor.RayExecutor(runs_per_device=3)
    fake.requests.clear()
    fixed.run(grid[:1], SweepOptions.resolve("ray"), types.SimpleNamespace(finished=lambda o: None))
    assert fake.requests == [("_task", {"num_cpus": 1, "num_gpus": 1 / 3, "max_retries": 0})]
    with pytest.raises(ConfigError, match="--runs-per-device 3 needs GPUs"):
        monkeypatch.setattr(ray_executor, "_ray", lambda: FakeRay({"CPU": 4}, results))
        fixed.run(grid[:1], SweepOptions.resolve("ray"), types.SimpleNamespace(finished=lambda o: None))
