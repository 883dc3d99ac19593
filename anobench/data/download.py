"""Fetching datasets into the layouts the loaders read: ``anobench data download NAME --root DIR``.

Sources (:data:`SOURCES`, docs/data.md): ``cifar10``, ``cifar100``, ``mnist`` and
``fashion-mnist`` from torchvision's URLs with torchvision's MD5s; ``mvtec`` from MVTec AD's
official archives, one per category (``screw``, ...) or the whole dataset (``all``).

Nothing under ``ROOT`` looks complete before it is: every file is fetched into
``ROOT/.anobench-download/`` under a ``.part`` name (an interrupted transfer resumes with an HTTP
range request), checked against its checksum, unpacked into a staging folder there, and the staged
dataset folder is checked again (each file's MD5, or MVTec's image and mask counts) before one
rename moves it into place. A mirror (``mirror=`` or ``$ANOBENCH_DATA_MIRROR``) serves the same
files as ``MIRROR/<dataset>/<file>`` and is checked against the same checksums.

Example:
    >>> sorted(SOURCES)
    ['cifar10', 'cifar100', 'fashion-mnist', 'mnist', 'mvtec']
    >>> [s.installs[0].folder for s in sources("cifar10")]
    ['cifar-10-batches-py']
    >>> download("mvtec", "/data", category="screw")  # doctest: +SKIP
    [Installed(name='mvtec/screw', folder=PosixPath('/data/mvtec_anomaly_detection/screw'), fetched=True)]
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from torchvision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

from anobench.data.imagefolder import IMAGE_SUFFIXES
from anobench.errors import DataError

MIRROR_ENV = "ANOBENCH_DATA_MIRROR"
WORK_FOLDER = ".anobench-download"
"""Where downloads and staging folders live under the root until the dataset is in place."""
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar")

Progress = Callable[[str, int, int | None], None]
"""Called as ``progress(file_name, bytes_done, bytes_total_or_None)`` while a file downloads."""


class DownloadError(DataError):
    """A file could not be fetched, failed its checksum, or unpacked into an incomplete folder."""


@dataclass(frozen=True)
class Remote:
    """One file to fetch.

    Attributes:
        path: ``<dataset>/<file>``: the file's path under a mirror; its last part names the file.
        urls: The official URLs, tried in order.
        algorithm: The checksum's hash algorithm, ``"md5"`` or ``"sha256"``.
        checksum: The expected hex digest; None where none is published (the unpacked folder's
            check then stands alone).
    """

    path: str
    urls: tuple[str, ...]
    algorithm: str
    checksum: str | None

    @property
    def filename(self) -> str:
        """The file's name."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Install:
    """One dataset folder an unpacked download provides.

    Attributes:
        staged: The folder's path in the staging folder after unpacking (archives are extracted
            there; a plain file is copied into the folder of its source's first install).
        folder: Where the folder goes, relative to the root.
        check: Raises :class:`DownloadError` naming what is missing or corrupt in a folder.
    """

    staged: str
    folder: str
    check: Callable[[Path], None]


@dataclass(frozen=True)
class Source:
    """What one download fetches and the folders it installs."""

    name: str
    remotes: tuple[Remote, ...]
    installs: tuple[Install, ...]


@dataclass(frozen=True)
class Installed:
    """A dataset folder in place under the root.

    Attributes:
        name: The source's name ("cifar10", "mvtec/screw", ...).
        folder: The folder.
        fetched: True if this call downloaded it, False if it was already there and checked.
    """

    name: str
    folder: Path
    fetched: bool


# --- folder checks -----------------------------------------------------------------------------


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file (``algorithm``: any name :func:`hashlib.new` takes)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5s(md5s: Mapping[str, str], folder: Path) -> None:
    """Check that ``folder`` holds every file of ``md5s`` with that MD5.

    Raises:
        DownloadError: Naming the missing files, or the first file whose MD5 differs.
    """
    missing = [name for name in md5s if not (folder / name).is_file()]
    if missing:
        raise DownloadError(f"{folder}: missing {', '.join(missing)}")
    for name, expected in md5s.items():
        got = file_digest(folder / name, "md5")
        if got != expected:
            raise DownloadError(f"{folder / name}: md5 {got}, expected {expected}; the file is corrupt")


@dataclass(frozen=True)
class MvtecCounts:
    """The image counts of one MVTec AD category (Bergmann et al., CVPR 2019, Table 1).

    Attributes:
        train_good: Defect-free training images, ``train/good``.
        test_good: Defect-free test images, ``test/good``.
        test_defect: Defective test images, ``test/<defect type>``; each has a mask
            ``ground_truth/<defect type>/<stem>_mask.png``.
    """

    train_good: int
    test_good: int
    test_defect: int


def check_mvtec(counts: MvtecCounts, folder: Path) -> None:
    """Check an MVTec AD category folder: its image counts and a mask for every defect image.

    Raises:
        DownloadError: Naming the folder whose count differs, or the first missing mask.
    """
    found = {
        "train/good": _images(folder / "train" / "good"),
        "test/good": _images(folder / "test" / "good"),
        "test/<defect>": [
            path
            for defect in sorted(_subfolders(folder / "test"))
            if defect.name != "good"
            for path in _images(defect)
        ],
    }
    expected = {
        "train/good": counts.train_good, "test/good": counts.test_good,
        "test/<defect>": counts.test_defect,
    }
    for where, paths in found.items():
        if len(paths) != expected[where]:
            raise DownloadError(
                f"{folder}: {len(paths)} images in {where}, expected {expected[where]}"
            )
    for image in found["test/<defect>"]:
        mask = folder / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
        if not mask.is_file():
            raise DownloadError(f"{folder}: missing the mask {mask} of {image}")


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# --- the sources -------------------------------------------------------------------------------


def archive_source(name: str, url: str, md5: str, folder: str, file_md5s: Mapping[str, str]) -> Source:
    """A dataset shipped as one tar archive holding ``folder`` (the CIFAR layout).

    Args:
        name: The dataset's name, also its folder under a mirror.
        url: The archive's official URL.
        md5: The archive's MD5.
        folder: The folder the archive holds, installed under the same name.
        file_md5s: The MD5 of every file of ``folder``.
    """
    remote = Remote(f"{name}/{PurePosixPath(url).name}", (url,), "md5", md5)
    return Source(name, (remote,), (Install(folder, folder, partial(check_md5s, dict(file_md5s))),))


def files_source(name: str, mirrors: tuple[str, ...], md5s: Mapping[str, str]) -> Source:
    """A dataset shipped as separate files (the MNIST layout), installed as ``ROOT/<name>/``.

    Args:
        name: The dataset's name, also its folder under the root and under a mirror.
        mirrors: Base URLs (ending in ``/``) that each serve every file, tried in order.
        md5s: Every file's name and MD5.
    """
    remotes = tuple(
        Remote(f"{name}/{file}", tuple(base + file for base in mirrors), "md5", md5)
        for file, md5 in md5s.items()
    )
    return Source(name, remotes, (Install(name, name, partial(check_md5s, dict(md5s))),))


def _torchvision_cifar(name: str, dataset: type[CIFAR10]) -> Source:
    files = {entry[0]: entry[1] for entry in [*dataset.train_list, *dataset.test_list]}
    files[dataset.meta["filename"]] = dataset.meta["md5"]
    return archive_source(name, dataset.url, dataset.tgz_md5, dataset.base_folder, files)


def _torchvision_idx(name: str, dataset: type[MNIST]) -> Source:
    return files_source(name, tuple(dataset.mirrors), dict(dataset.resources))


MVTEC_FOLDER = "mvtec_anomaly_detection"
"""The folder under the root holding one folder per MVTec AD category."""
_MVTEC_SHARE = "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/download"
MVTEC_ALL = Remote(
    "mvtec/mvtec_anomaly_detection.tar.xz",
    (f"{_MVTEC_SHARE}/420938113-1629960298/mvtec_anomaly_detection.tar.xz",),
    "sha256",
    "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
)
"""The whole of MVTec AD (4.9 GB); URL and SHA-256 as anomalib records them."""

# category: (file id of the official download page, SHA-256 where recorded, image counts)
_MVTEC: dict[str, tuple[str, str | None, MvtecCounts]] = {
    "bottle": ("420937370-1629958698", "726512129cb3b1f47d4f6cd7c7fc9170db7fc209132249c788fec06029cb5dc3", MvtecCounts(209, 20, 63)),
    "cable": ("420937413-1629958794", None, MvtecCounts(224, 58, 92)),
    "capsule": ("420937454-1629958872", None, MvtecCounts(219, 23, 109)),
    "carpet": ("420937484-1629959013", None, MvtecCounts(280, 28, 89)),
    "grid": ("420937487-1629959044", "d94a9a651cbfaee22c94d06cf8fa8204a590c872362de0489eb34f1645328de8", MvtecCounts(264, 21, 57)),
    "hazelnut": ("420937545-1629959162", None, MvtecCounts(391, 40, 70)),
    "leather": ("420937607-1629959262", None, MvtecCounts(245, 32, 92)),
    "metal_nut": ("420937637-1629959294", "86e3c8e163ceb19146ad3ddc408e85cc34ae02e0da430e07a73bac6bbb48532a", MvtecCounts(220, 22, 93)),
    "pill": ("420938129-1629960351", None, MvtecCounts(267, 26, 141)),
    "screw": ("420938130-1629960389", "0a27a365a21e472d19b9fb48cb8e4002b49fabe083bff7f4c16fa57d78154f10", MvtecCounts(320, 41, 119)),
    "tile": ("420938133-1629960456", None, MvtecCounts(230, 33, 84)),
    "toothbrush": ("420938134-1629960477", None, MvtecCounts(60, 12, 30)),
    "transistor": ("420938166-1629960554", None, MvtecCounts(213, 60, 40)),
    "wood": ("420938383-1629960649", None, MvtecCounts(247, 19, 60)),
    "zipper": ("420938385-1629960680", "7ab46e0e195da145db30052baea3d3a5d14c5f0e710137c968e0423f02cb942d", MvtecCounts(240, 32, 119)),
}  # fmt: skip

_MVTEC_CATEGORIES = {
    category: Source(
        f"mvtec/{category}",
        (Remote(f"mvtec/{category}.tar.xz", (f"{_MVTEC_SHARE}/{file_id}/{category}.tar.xz",),
                "sha256", sha256),),
        (Install(category, f"{MVTEC_FOLDER}/{category}", partial(check_mvtec, counts)),),
    )
    for category, (file_id, sha256, counts) in _MVTEC.items()
}


def mvtec_sources(categories: Mapping[str, Source], whole: Remote) -> dict[str, Source]:
    """MVTec AD's sources: every category's own, and ``"all"`` (the archive ``whole``, installing
    every category's folder)."""
    installs = tuple(inst for source in categories.values() for inst in source.installs)
    return {"all": Source("mvtec/all", (whole,), installs), **categories}


SOURCES: dict[str, dict[str, Source]] = {
    "cifar10": {"": _torchvision_cifar("cifar10", CIFAR10)},
    "cifar100": {"": _torchvision_cifar("cifar100", CIFAR100)},
    "fashion-mnist": {"": _torchvision_idx("fashion-mnist", FashionMNIST)},
    "mnist": {"": _torchvision_idx("mnist", MNIST)},
    "mvtec": mvtec_sources(_MVTEC_CATEGORIES, MVTEC_ALL),
}
"""Every downloadable dataset: its sources by category ("" for a dataset without categories);
each MVTec AD category installs as ``ROOT/mvtec_anomaly_detection/<category>``."""


def sources(name: str, category: str | None = None) -> list[Source]:
    """The sources that ``download(name, category=...)`` fetches.

    Raises:
        DownloadError: For an unknown dataset or category, a missing category, or a category
            given to a dataset without categories; the message lists the valid ones.
    """
    if name not in SOURCES:
        raise DownloadError(f"unknown dataset {name!r} to download; valid names: {', '.join(sorted(SOURCES))}")
    by_category = SOURCES[name]
    if "" in by_category:
        if category is not None:
            raise DownloadError(f"dataset {name!r} has no categories, got --category {category!r}")
        return [by_category[""]]
    valid = ", ".join(by_category)
    if category is None:
        raise DownloadError(f"dataset {name!r} needs --category, one of: {valid}")
    if category not in by_category:
        raise DownloadError(f"unknown {name} category {category!r}; valid: {valid}")
    return [by_category[category]]


# --- fetching ----------------------------------------------------------------------------------


def download(
    name: str,
    root: str | Path,
    category: str | None = None,
    mirror: str | None = None,
    progress: Progress | None = None,
) -> list[Installed]:
    """Download, check and install a dataset under ``root``; folders already there are checked.

    Args:
        name: A key of :data:`SOURCES`.
        root: The data root (created if missing); pass it as ``--data-root`` to ``anobench run``.
        category: For ``mvtec``: a category or ``"all"``.
        mirror: Base URL serving ``<dataset>/<file>`` instead of the official URLs; default
            ``$ANOBENCH_DATA_MIRROR``, else the official URLs.
        progress: Called while each file downloads (see :data:`Progress`).

    Returns:
        Every folder the dataset consists of, in place and checked.

    Raises:
        DownloadError: If a file cannot be fetched or fails its checksum, if an unpacked folder is
            incomplete, or if a folder already under ``root`` is incomplete (it is never
            overwritten); the message names the file, URL or folder.
    """
    root = Path(root).expanduser()
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    installed: list[Installed] = []
    for source in sources(name, category):
        installed.extend(_install(source, root, mirror, progress or _quiet))
    return installed


def _quiet(file: str, done: int, total: int | None) -> None:
    """The default progress callback: report nothing."""


def _install(source: Source, root: Path, mirror: str | None, progress: Progress) -> list[Installed]:
    """Check the source's folders already under ``root``; fetch, stage, check and move the rest."""
    present = [inst for inst in source.installs if (root / inst.folder).exists()]
    for inst in present:
        try:
            inst.check(root / inst.folder)
        except DownloadError as error:
            raise DownloadError(
                f"{root / inst.folder} exists but is not a complete copy ({error}); move it away "
                "and run again"
            ) from None
    done = [Installed(source.name, root / inst.folder, fetched=False) for inst in present]
    missing = [inst for inst in source.installs if inst not in present]
    if not missing:
        return done
    work = root / WORK_FOLDER / source.name.replace("/", "-")
    work.mkdir(parents=True, exist_ok=True)
    files = [fetch(remote, work, mirror, progress) for remote in source.remotes]
    staging = work / "staging"
    shutil.rmtree(staging, ignore_errors=True)  # left by an unpacking that was killed
    staging.mkdir()
    for path in files:
        _unpack(path, staging, source.installs[0].staged)
    for inst in missing:
        inst.check(staging / inst.staged)
    for inst in missing:
        target = root / inst.folder
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging / inst.staged).rename(target)  # the one step that makes the folder appear
        done.append(Installed(source.name, target, fetched=True))
    shutil.rmtree(work)
    _remove_if_empty(root / WORK_FOLDER)
    return done


def _unpack(path: Path, staging: Path, plain_folder: str) -> None:
    """Extract an archive into ``staging``, or copy a plain file into ``staging/plain_folder``
    (a copy, so the checked download stays until the dataset is in place)."""
    if not path.name.endswith(_ARCHIVE_SUFFIXES):
        (staging / plain_folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / plain_folder / path.name)
        return
    try:
        with tarfile.open(path) as archive:
            archive.extractall(staging, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DownloadError(f"{path}: cannot unpack ({type(error).__name__}: {error})") from error


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: another dataset's download is in progress or was interrupted
        pass


def fetch(remote: Remote, folder: Path, mirror: str | None = None, progress: Progress = _quiet) -> Path:
    """Download ``remote`` into ``folder`` and check its checksum; returns the file.

    A complete file already there is checked and kept; a ``.part`` file left by an interrupted
    download is resumed.

    Raises:
        DownloadError: If no URL delivers the file (the message gives each URL's error), or the
            file's checksum differs (the partial file is deleted, so the next call starts over).
    """
    target = folder / remote.filename
    if target.is_file():
        if remote.checksum is None or file_digest(target, remote.algorithm) == remote.checksum:
            return target
        target.unlink()
    part = folder / f"{remote.filename}.part"
    urls = (f"{mirror.rstrip('/')}/{remote.path}",) if mirror else remote.urls
    failures = []
    for url in urls:
        try:
            _get(url, part, remote.filename, progress)
            break
        except DownloadError as error:
            failures.append(str(error))
    else:
        raise DownloadError(f"cannot download {remote.filename}: {'; '.join(failures)}")
    if remote.checksum is not None:
        got = file_digest(part, remote.algorithm)
        if got != remote.checksum:
            part.unlink()
            raise DownloadError(
                f"{url}: {remote.algorithm} {got}, expected {remote.checksum}; the download is "
                "corrupt or the server's file changed (deleted it; run again to fetch it anew)"
            )
    part.rename(target)
    return target


_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


def _get(url: str, part: Path, name: str, progress: Progress) -> None:
    """Fetch ``url`` into ``part``, resuming from its current size when the server allows."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "anobench"} | ({"Range": f"bytes={start}-"} if start else {})
    try:
        response = urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as error:
        if error.code == 416 and start:  # the partial file is not a prefix of this one: restart
            part.unlink()
            return _get(url, part, name, progress)
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from None
    with response:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if response.status != 206 or match is None or int(match.group(1)) != start:
            start = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        done = start
        progress(name, done, total)
        try:
            with open(part, "ab" if start else "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    progress(name, done, total)
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(
                f"{url}: interrupted after {done} bytes ({type(error).__name__}: {error}); run "
                "again to resume"
            ) from None
    if total is not None and done != total:
        raise DownloadError(f"{url}: connection closed after {done} of {total} bytes; run again to resume")
