"""Small helpers the original ScpTensor kept in ``scptensor.core.utils``.

* :func:`_find_closest_match` suggests a name for a mistyped assay or layer
  (used by the not-found errors).
* :func:`compute_pca` and :func:`compute_umap` embed a samples x features
  matrix; NaN cells take their column's median first.
* :func:`requires_dependency` makes a function raise
  :class:`~h5scp.core.exceptions.MissingDependencyError` when an optional
  package is absent.

Unlike the original, :func:`compute_umap` does not fall back to a random
projection when ``umap-learn`` is missing: it raises, since a random
projection is not a UMAP embedding.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import wraps
from typing import Any

import numpy as np

# _find_closest_match lives beside the errors whose suggestions it makes; the original's path hands it on.
from h5scp.core.exceptions import MissingDependencyError, ScpValueError, _find_closest_match

__all__ = ["_find_closest_match", "compute_pca", "compute_umap", "requires_dependency"]


def _median_filled(X) -> np.ndarray:
    X = np.array(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    if X.ndim != 2:
        raise ScpValueError(
            "the matrix to embed must be 2-D (samples x features)", parameter="X",
            value=X.shape, expected="2 dimensions", found=f"{X.ndim}",
        )
    holes = np.isnan(X)
    if holes.any():
        # a column without any value takes 0, which np.nanmedian would leave as NaN (with a warning)
        empty = holes.all(axis=0)
        medians = np.zeros(X.shape[1])
        if (~empty).any():
            medians[~empty] = np.nanmedian(X[:, ~empty], axis=0)
        X[holes] = np.take(medians, np.nonzero(holes)[1])
    return X


def compute_pca(
    X: np.ndarray,
    n_components: int = 2,
    center: bool = True,
    random_state: int | None = None,
) -> np.ndarray:
    """Principal component scores (samples x ``n_components``) by a thin SVD.

    NaN cells take their column's median (0 for a column without values);
    ``center`` subtracts column means first.  ``random_state`` is accepted for
    the original's signature; the SVD is deterministic.
    """
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ScpValueError(
            "n_components must be a positive integer", parameter="n_components", value=n_components,
        )
    data = _median_filled(X)
    if center:
        data = data - data.mean(axis=0, keepdims=True)
    U, S, _ = np.linalg.svd(data, full_matrices=False)
    k = min(int(n_components), S.size)
    return U[:, :k] * S[:k]


def compute_umap(
    X: np.ndarray,
    n_components: int = 2,
    random_state: int | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """UMAP embedding (samples x ``n_components``) with ``umap-learn``; NaN cells take column medians.

    ``kwargs`` go to ``umap.UMAP``.  Raises
    :class:`~h5scp.core.exceptions.MissingDependencyError` when
    ``umap-learn`` is not installed.
    """
    try:
        umap = importlib.import_module("umap")
    except ImportError:
        raise MissingDependencyError("umap-learn") from None
    data = _median_filled(X)
    return umap.UMAP(n_components=n_components, random_state=random_state, **kwargs).fit_transform(data)


def requires_dependency(package_name: str, install_hint: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the wrapped function raises MissingDependencyError when ``package_name`` cannot be imported.

    ``install_hint`` is kept for the original's signature; the error's message
    says how to install the package.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                importlib.import_module(package_name)
            except ImportError:
                raise MissingDependencyError(package_name) from None
            return func(*args, **kwargs)

        return wrapper

    return decorator
