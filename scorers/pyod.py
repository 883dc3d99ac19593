"""PyOD's detectors as scorers, ``pyod:NAME[:key=value,...]`` (optional extra ``anobench[pyod]``).

``pyod:IForest:n_estimators=200`` fits ``pyod.models.iforest.IForest(n_estimators=200)`` on the
raw encoder features of the bank (as float64) and scores with its ``decision_function``, PyOD's
sign already: higher = more anomalous. ``NAME`` is a key of :data:`DETECTORS`; ``pyod`` alone is
``pyod:KNN``. The parameters go to the detector's constructor unchanged, all but ``n_folds``
(below), with one default changed: a detector that takes ``random_state`` gets
:data:`RANDOM_STATE` unless the spec sets it, so that fitting is deterministic (the logged model
refits each scorer on its stored bank, docs/detector.md). Parameter names are checked against the
detector's constructor when the spec is read; their values are checked by PyOD at ``fit``.

Self-match rule: ``n_folds``-fold cross-fitting, as ``ocsvm``: the bank is split into ``n_folds``
interleaved folds (row i is in fold i mod n_folds) and each fold is scored, as test rows are, by
a detector of the same parameters fitted on the other folds. PyOD's own training scores
(``decision_scores_``) are not used, as they are not leave-one-out for every detector: IForest's
come from trees grown on the point itself. (ECOD and COPOD rank a query among the fitted rows
and the query rows, so their cross-fitted scores equal ``decision_scores_``; KNN and LOF leave the
point out of ``decision_scores_``, where cross-fitting leaves out its fold.)

Batch dependence: ECOD, COPOD and DIF score a row together with the other rows of the same
``decision_function`` call, so a row's score depends on its batch. The harness scores the whole
test set in one call.

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> scorer = get_scorer("pyod", detector="IForest", n_estimators=10).fit(torch.randn(50, 4))
    >>> scorer.decision_function(torch.randn(3, 4)).shape
    (3,)
    >>> scorer.score_train().shape
    (50,)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from typing import Any

import numpy as np
import torch

from anobench.errors import AnobenchError
from anobench.scorers.base import Scorer
from anobench.scorers.registry import register_scorer
from anobench.specs import check_params

DETECTORS: dict[str, str] = {
    "ABOD": "abod", "CBLOF": "cblof", "COPOD": "copod", "DIF": "dif", "ECOD": "ecod", "GMM": "gmm",
    "HBOS": "hbos", "HDBSCAN": "hdbscan", "IForest": "iforest", "INNE": "inne", "KDE": "kde",
    "KNN": "knn", "KPCA": "kpca", "LODA": "loda", "LOF": "lof", "LUNAR": "lunar", "MCD": "mcd",
    "OCSVM": "ocsvm", "PCA": "pca", "QMCD": "qmcd", "Sampling": "sampling",
}
"""PyOD's detectors by class name -> module of ``pyod.models``: the unsupervised ones for feature
vectors that score new rows against the fitted data, need no package beyond PyOD's and
anobench's, and fit the same way twice (PyOD 3.6). Left out: COF, LMDD, LOCI, SOD and SOS (their
``decision_function`` scores the given rows among themselves, ignoring the fit), CD (two fits
on the same rows score new rows differently), ROD (every 3-feature subspace), RGraph and
DeepSVDD (print progress; DeepSVDD also needs ``n_features``), MAD (one feature only), LSCP (a
list of detectors as parameter), XGBOD and DevNet (supervised), FeatureBagging, SUOD,
AutoEncoder and VAE (other packages: combo, suod, tqdm), and SO_GAAL, MO_GAAL, AnoGAN, ALAD and
AE1SVM (random fits without ``random_state``). DIF and LUNAR reseed torch's and NumPy's global
generators when they are built and fitted."""
RANDOM_STATE = 0
"""``random_state`` of a detector that takes one and whose spec does not set it (PyOD: None)."""
_OWN_PARAMS = ("detector", "n_folds")


def detector_class(name: str) -> type:
    """The PyOD detector class ``name``, a key of :data:`DETECTORS`.

    Raises:
        AnobenchError: If PyOD is not installed; the message names the install command.
    """
    if importlib.util.find_spec("pyod") is None:
        raise AnobenchError(f"scorer 'pyod:{name}' needs PyOD: pip install 'anobench[pyod]'")
    return getattr(importlib.import_module(f"pyod.models.{DETECTORS[name]}"), name)


@register_scorer("pyod")
class PyodScorer(Scorer):
    """A PyOD detector fitted on the raw features; anomaly score = its ``decision_function``.

    Self-match rule: ``n_folds``-fold cross-fitting (see the module docstring).

    Args:
        detector: A key of :data:`DETECTORS`.
        n_folds: Folds used by :meth:`score_train` (>= 2).
        **params: The detector's constructor parameters.

    Attributes:
        train_: (N, F) float64 training features.
        detector_: The detector fitted on all of them.

    Raises:
        ValueError: For an unknown detector or ``n_folds`` < 2.
        ConfigError: For a parameter the detector does not take.
        AnobenchError: If PyOD is not installed.
    """

    def __init__(self, detector: str = "KNN", n_folds: int = 5, **params: Any) -> None:
        if detector not in DETECTORS:
            valid = ", ".join(DETECTORS)
            raise ValueError(f"pyod: unknown detector {detector!r}; valid names: {valid}")
        if n_folds < 2:
            raise ValueError(f"pyod: n_folds must be >= 2, got {n_folds}")
        check_params(f"scorer 'pyod:{detector}'", detector_class(detector), params)
        self.detector = detector
        self.n_folds = n_folds
        vars(self).update(params)  # stored flat, so get_params() round-trips through get_scorer

    def _make_detector(self) -> Any:
        cls = detector_class(self.detector)
        params = {k: v for k, v in self.get_params().items() if k not in _OWN_PARAMS}
        if "random_state" in inspect.signature(cls).parameters:
            params.setdefault("random_state", RANDOM_STATE)
        return cls(**params)

    def _fit(self, bank: torch.Tensor) -> None:
        if bank.shape[0] < 2 * self.n_folds:
            raise ValueError(f"pyod needs at least 2 * n_folds = {2 * self.n_folds} training rows, "
                             f"got {bank.shape[0]}")
        self.train_ = bank.cpu().to(torch.float64).numpy()
        self.detector_ = self._make_detector().fit(self.train_)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = features.cpu().to(torch.float64).numpy()
        return torch.from_numpy(np.asarray(self.detector_.decision_function(x), dtype=np.float64))

    def _score_train(self) -> torch.Tensor:
        fold = np.arange(self.train_.shape[0]) % self.n_folds
        scores = np.empty(self.train_.shape[0])
        for f in range(self.n_folds):
            held = fold == f
            detector = self._make_detector().fit(self.train_[~held])
            scores[held] = detector.decision_function(self.train_[held])
        return torch.from_numpy(scores)
