"""`anobench data download` and `anobench data check` against a local HTTP server.

The server on 127.0.0.1 serves tiny archives generated in the real formats (CIFAR pickles in a
tar.gz, gzipped idx files, MVTec AD category trees in a tar.xz); the sources keep their real
layout and folder checks and only their checksums are replaced by those of the generated files.
Every request of the downloader is refused unless it goes to 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST
from typer.testing import CliRunner

from anobench.cli import app
from anobench.data import load_dataset
from anobench.data import download as dl
from fakedata import write_cifar10, write_fashion_mnist

runner = CliRunner()


class FileServer:
    """An HTTP server on 127.0.0.1 serving ``files`` (URL path -> bytes), with Range support.

    Attributes:
        files: What it serves.
        requests: (path, Range header or None) of every request, in order.
        drop_after: URL path -> byte count: the next response for that path sends only that many
            bytes of its body and closes the connection (once).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
                if start >= len(body) > 0:
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.drop_after.pop(self.path, None)
                self.wfile.write(body[start:] if cut is None else body[start:start + cut])
                self.close_connection = cut is not None

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    """The local server; the downloader may reach nothing else, and no mirror comes from outside."""
    real_urlopen = dl.urlopen

    def local_only(request, timeout):
        host = urlparse(request.full_url).hostname
        assert host == "127.0.0.1", f"test tried to reach {request.full_url}"
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(dl, "urlopen", local_only)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    files = FileServer()
    yield files
    files.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_bytes(folder: Path, mode: str) -> bytes:
    """Every entry of ``folder`` in a tar archive (``mode``: "w:gz" or "w:xz"), paths relative to it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def serve_cifar10(server: FileServer, tmp_path: Path, monkeypatch) -> bytes:
    """Serve a generated CIFAR-10 archive at the mirror path; the cifar10 source checks its MD5s."""
    folder = write_cifar10(tmp_path / "src")
    archive = tar_bytes(tmp_path / "src", "w:gz")
    server.files["/cifar10/cifar-10-python.tar.gz"] = archive
    real = dl.SOURCES["cifar10"][""]
    fake = dl.archive_source("cifar10", CIFAR10.url, md5(archive), folder.name,
                             {p.name: md5(p.read_bytes()) for p in sorted(folder.iterdir())})
    assert fake.remotes[0].path == real.remotes[0].path and fake.installs[0].folder == real.installs[0].folder
    monkeypatch.setitem(dl.SOURCES, "cifar10", {"": fake})
    return archive


def download_cli(*args: str):
    return runner.invoke(app, ["data", "download", *args])


def test_default_sources_are_torchvisions_and_mvtecs():
    cifar = dl.SOURCES["cifar10"][""].remotes[0]
    assert cifar.urls == (CIFAR10.url,) and (cifar.algorithm, cifar.checksum) == ("md5", CIFAR10.tgz_md5)
    for name, dataset in (("mnist", MNIST), ("fashion-mnist", FashionMNIST)):
        remotes = dl.SOURCES[name][""].remotes
        assert [(r.filename, r.checksum) for r in remotes] == [tuple(x) for x in dataset.resources]
        assert remotes[0].urls == tuple(m + dataset.resources[0][0] for m in dataset.mirrors)
    mvtec = dl.SOURCES["mvtec"]
    assert len(mvtec) == 16 and mvtec["all"].remotes == (dl.MVTEC_ALL,) and len(mvtec["all"].installs) == 15
    screw = mvtec["screw"].remotes[0]
    assert screw.urls[0].startswith("https://www.mydrive.ch/") and screw.urls[0].endswith("/screw.tar.xz")
    assert screw.algorithm == "sha256" and len(screw.checksum) == 64


def test_cifar10_downloads_into_the_layout_run_reads(server, tmp_path, monkeypatch):
    serve_cifar10(server, tmp_path, monkeypatch)
    root = tmp_path / "data"
    result = download_cli("cifar10", "--root", str(root), "--mirror", server.url)
    assert result.exit_code == 0, result.output
    assert f"--dataset cifar10 --data-root {root}" in result.stdout
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no work folder left
    assert server.requests == [("/cifar10/cifar-10-python.tar.gz", None)]
    assert len(load_dataset("cifar10", root).train) == 200

    again = download_cli("cifar10", "--root", str(root), "--mirror", server.url)
    assert again.exit_code == 0 and "already there, checked" in again.stdout
    assert len(server.requests) == 1

    check = runner.invoke(app, ["data", "check", "--dataset", "cifar10", "--root", str(root)])
    assert check.exit_code == 0, check.output
    assert "airplane" in check.stdout and "200" in check.stdout and "100" in check.stdout

    run = runner.invoke(app, ["run", "--dataset", "cifar10", "--data-root", str(root), "--preset", "smoke",
                              "--steps", "2", "--device", "cpu", "--experiment", "downloaded"])
    assert run.exit_code == 0, run.output


def test_the_mirror_setting_comes_from_the_environment(server, tmp_path, monkeypatch):
    serve_cifar10(server, tmp_path, monkeypatch)
    monkeypatch.setenv(dl.MIRROR_ENV, server.url + "/")
    installed = dl.download("cifar10", tmp_path / "data")
    assert [(i.name, i.fetched) for i in installed] == [("cifar10", True)]


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path, monkeypatch):
    archive = serve_cifar10(server, tmp_path, monkeypatch)
    server.drop_after["/cifar10/cifar-10-python.tar.gz"] = half = len(archive) // 2
    root = tmp_path / "data"
    with pytest.raises(dl.DownloadError, match=f"connection closed after {half} of {len(archive)} bytes"):
        dl.download("cifar10", root, mirror=server.url)
    assert not (root / "cifar-10-batches-py").exists()
    assert (root / dl.WORK_FOLDER / "cifar10" / "cifar-10-python.tar.gz.part").stat().st_size == half

    seen: list[tuple[int, int | None]] = []
    dl.download("cifar10", root, mirror=server.url, progress=lambda f, done, total: seen.append((done, total)))
    assert server.requests[-1] == ("/cifar10/cifar-10-python.tar.gz", f"bytes={half}-")
    assert seen[0] == (half, len(archive)) and seen[-1] == (len(archive), len(archive))
    assert len(load_dataset("cifar10", root).test) == 100


def test_a_kill_before_the_rename_leaves_no_dataset_and_the_rerun_finishes(server, tmp_path, monkeypatch):
    serve_cifar10(server, tmp_path, monkeypatch)
    real_unpack = dl._unpack

    def unpack_then_die(*args):
        real_unpack(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_unpack", unpack_then_die)
    root = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        dl.download("cifar10", root, mirror=server.url)
    assert not (root / "cifar-10-batches-py").exists()
    assert (root / dl.WORK_FOLDER / "cifar10" / "staging" / "cifar-10-batches-py").is_dir()

    monkeypatch.setattr(dl, "_unpack", real_unpack)
    assert dl.download("cifar10", root, mirror=server.url)[0].fetched
    assert len(server.requests) == 1  # the checked archive was kept; only the unpacking reran
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_a_corrupt_download_is_one_error_line_and_is_deleted(server, tmp_path, monkeypatch):
    archive = serve_cifar10(server, tmp_path, monkeypatch)
    server.files["/cifar10/cifar-10-python.tar.gz"] = archive[:-10] + bytes(10)
    root = tmp_path / "data"
    result = download_cli("cifar10", "--root", str(root), "--mirror", server.url)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"expected {md5(archive)}" in lines[0] and "cifar-10-python.tar.gz" in lines[0]
    assert not (root / "cifar-10-batches-py").exists()
    assert not list((root / dl.WORK_FOLDER).rglob("*.part"))


def test_an_incomplete_folder_already_there_is_named_and_kept(server, tmp_path, monkeypatch):
    serve_cifar10(server, tmp_path, monkeypatch)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(b"mine")
    result = download_cli("cifar10", "--root", str(tmp_path / "data"), "--mirror", server.url)
    assert result.exit_code == 2 and "exists but is not a complete copy" in result.stderr
    assert "missing batches.meta, data_batch_2" in result.stderr
    assert (folder / "data_batch_1").read_bytes() == b"mine"
    assert server.requests == []


def test_a_missing_file_on_the_server_names_the_url(server, tmp_path):
    result = download_cli("cifar100", "--root", str(tmp_path), "--mirror", server.url)
    assert result.exit_code == 2
    assert f"{server.url}/cifar100/cifar-100-python.tar.gz: HTTP 404" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def serve_idx(server: FileServer, tmp_path: Path, monkeypatch, name: str, prefix: str) -> None:
    """Serve gzipped idx files at ``/{prefix}/<file>``; the ``name`` source fetches from there."""
    folder = write_fashion_mnist(tmp_path / "idx", gzipped=True)
    md5s = {}
    for path in sorted(folder.glob("*.gz")):
        server.files[f"/{prefix}/{path.name}"] = path.read_bytes()
        md5s[path.name] = md5(path.read_bytes())
    mirrors = (f"{server.url}/down/", f"{server.url}/{prefix}/")  # the first official mirror is down
    monkeypatch.setitem(dl.SOURCES, name, {"": dl.files_source(name, mirrors, md5s)})


def test_mnist_falls_back_to_the_next_official_mirror_and_loads(server, tmp_path, monkeypatch):
    serve_idx(server, tmp_path, monkeypatch, "mnist", "ok")
    root = tmp_path / "data"
    result = download_cli("mnist", "--root", str(root))
    assert result.exit_code == 0, result.output
    first = "t10k-images-idx3-ubyte.gz"
    assert [path for path, _ in server.requests][:2] == [f"/down/{first}", f"/ok/{first}"]
    mnist = load_dataset("mnist", root)
    assert mnist.class_names == [str(d) for d in range(10)] and mnist.class_counts()["train"] == [10] * 10


def test_fashion_mnist_installs_where_its_loader_looks(server, tmp_path, monkeypatch):
    serve_idx(server, tmp_path, monkeypatch, "fashion-mnist", "fashion-mnist")
    installed = dl.download("fashion-mnist", tmp_path / "data")
    assert installed[0].folder == tmp_path / "data" / "fashion-mnist"
    assert len(load_dataset("fashion-mnist", tmp_path / "data").test) == 50


def write_mvtec_category(root: Path, category: str, counts: dl.MvtecCounts, skip_mask: bool = False) -> Path:
    """An MVTec AD category tree with the official counts: two defect types, a mask per defect image."""
    folder = root / category
    pixels = np.full((8, 8, 3), 128, np.uint8)
    defects = {"crack": counts.test_defect // 2, "scratch": counts.test_defect - counts.test_defect // 2}
    for where, n in (("train/good", counts.train_good), ("test/good", counts.test_good),
                     *((f"test/{d}", n) for d, n in defects.items())):
        (folder / where).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(pixels).save(folder / where / f"{i:03d}.png")
            if where.startswith("test/") and where != "test/good" and not (skip_mask and i == 0):
                mask = folder / "ground_truth" / where[5:] / f"{i:03d}_mask.png"
                mask.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.zeros((8, 8), np.uint8)).save(mask)
    return folder


def serve_mvtec_category(server, tmp_path, monkeypatch, category: str, skip_mask: bool = False) -> None:
    """Serve a generated category archive; the real source, with the archive's SHA-256."""
    counts = dl.SOURCES["mvtec"][category].installs[0].check.args[0]
    write_mvtec_category(tmp_path / "src", category, counts, skip_mask)
    archive = tar_bytes(tmp_path / "src", "w:xz")
    server.files[f"/mvtec/{category}.tar.xz"] = archive
    real = dl.SOURCES["mvtec"][category]
    remote = dataclasses.replace(real.remotes[0], checksum=hashlib.sha256(archive).hexdigest())
    monkeypatch.setitem(dl.SOURCES["mvtec"], category, dataclasses.replace(real, remotes=(remote,)))


def test_an_mvtec_category_installs_with_its_masks_and_loads_as_an_image_folder(server, tmp_path, monkeypatch):
    serve_mvtec_category(server, tmp_path, monkeypatch, "toothbrush")
    root = tmp_path / "data"
    result = download_cli("mvtec", "--category", "toothbrush", "--root", str(root), "--mirror", server.url)
    assert result.exit_code == 0, result.output
    folder = root / "mvtec_anomaly_detection" / "toothbrush"
    assert f"--dataset imagefolder --data-root {folder} --normal-class good" in result.stdout
    assert len(list((folder / "ground_truth").rglob("*_mask.png"))) == 30
    images = load_dataset("imagefolder", folder, image_size=8)
    assert images.class_names == ["crack", "good", "scratch"]
    assert images.class_counts() == {"train": [0, 60, 0], "test": [15, 12, 15]}


def test_an_mvtec_category_without_a_mask_is_not_installed(server, tmp_path, monkeypatch):
    serve_mvtec_category(server, tmp_path, monkeypatch, "toothbrush", skip_mask=True)
    root = tmp_path / "data"
    with pytest.raises(dl.DownloadError, match=r"missing the mask .*ground_truth/crack/000_mask.png"):
        dl.download("mvtec", root, category="toothbrush", mirror=server.url)
    assert not (root / "mvtec_anomaly_detection" / "toothbrush").exists()


def test_mvtec_all_unpacks_the_whole_archive_into_every_category(server, tmp_path, monkeypatch):
    categories = {name: dl.SOURCES["mvtec"][name] for name in ("toothbrush", "transistor")}
    for name, source in categories.items():
        write_mvtec_category(tmp_path / "src", name, source.installs[0].check.args[0])
    (tmp_path / "src" / "license.txt").write_text("CC BY-NC-SA 4.0")
    archive = tar_bytes(tmp_path / "src", "w:xz")
    server.files["/mvtec/mvtec_anomaly_detection.tar.xz"] = archive
    whole = dataclasses.replace(dl.MVTEC_ALL, checksum=hashlib.sha256(archive).hexdigest())
    monkeypatch.setitem(dl.SOURCES, "mvtec", dl.mvtec_sources(categories, whole))
    root = tmp_path / "data"
    installed = dl.download("mvtec", root, category="all", mirror=server.url)
    assert [i.folder.name for i in installed] == ["toothbrush", "transistor"]
    assert sorted(p.name for p in (root / "mvtec_anomaly_detection").iterdir()) == ["toothbrush", "transistor"]


@pytest.mark.parametrize("args, expected", [
    (["svhn"], "unknown dataset 'svhn' to download; valid names: cifar10, cifar100, fashion-mnist, mnist, mvtec"),
    (["mvtec"], "dataset 'mvtec' needs --category, one of: all, bottle, cable"),
    (["mvtec", "--category", "scre"], "unknown mvtec category 'scre'; valid: all, bottle"),
    (["cifar10", "--category", "cat"], "dataset 'cifar10' has no categories, got --category 'cat'"),
])
def test_bad_names_are_one_error_line(tmp_path, args, expected):
    result = download_cli(*args, "--root", str(tmp_path))
    assert result.exit_code == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_check_names_what_is_missing(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    result = runner.invoke(app, ["data", "check", "--dataset", "cifar10", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "missing test_batch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_file_digest_reads_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CHUNK_BYTES", 3)
    (tmp_path / "f").write_bytes(b"0123456789")
    assert dl.file_digest(tmp_path / "f", "sha256") == hashlib.sha256(b"0123456789").hexdigest()
    check = partial(dl.check_md5s, {"f": md5(b"0123456789")})
    check(tmp_path)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(dl.DownloadError, match=r"f: md5 .*, expected .*; the file is corrupt"):
        check(tmp_path)
