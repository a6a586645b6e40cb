"""Bradley–Terry training of a linear scorer on feature differences, with soft labels.

s(text) = w·f(text); P(a better than b) = σ(s_a − s_b); loss = BCE(σ(w·(f_a − f_b)), p) + L2.
The soft label p enters exactly: each pair is one row labelled 1 with weight p and one labelled 0 with weight
1 − p, which is the same cross-entropy. No intercept: swapping a and b must flip the prediction.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression


def pair_design(fa, fb, p_a: np.ndarray):
    """Rows (f_a − f_b) twice, targets (1, 0), weights (p, 1 − p)."""
    diff = fa - fb
    stack = sp.vstack if sp.issparse(diff) else np.vstack
    x = stack([diff, diff])
    y = np.concatenate([np.ones(len(p_a)), np.zeros(len(p_a))])
    w = np.concatenate([p_a, 1.0 - p_a])
    keep = w > 0
    return x[keep] if not sp.issparse(x) else x.tocsr()[np.flatnonzero(keep)], y[keep], w[keep]


def fit_linear(fa, fb, p_a: np.ndarray, *, c: float = 1.0, max_iter: int = 2000) -> np.ndarray:
    """The weight vector w of a Bradley–Terry model (L2-regularised logistic regression on differences)."""
    x, y, w = pair_design(fa, fb, np.asarray(p_a, dtype=np.float64))
    if len(set(y.tolist())) < 2:
        raise ValueError("the labels are all on one side; cannot train a preference model")
    model = LogisticRegression(C=c, fit_intercept=False, solver="liblinear" if sp.issparse(x) else "lbfgs",
                               max_iter=max_iter)
    model.fit(x, y, sample_weight=w)
    return model.coef_.ravel().astype(np.float32)


def choose_c(fa, fb, p_a: np.ndarray, grid=(0.1, 1.0, 10.0), folds: int = 3, seed: int = 0) -> float:
    """The L2 strength with the lowest cross-validated soft log-loss on the training pairs."""
    n = len(p_a)
    if n < 3 * folds:
        return 1.0
    order = np.random.default_rng(seed).permutation(n)
    best, best_loss = 1.0, float("inf")
    for c in grid:
        loss = 0.0
        for k in range(folds):
            test = order[k::folds]
            train = np.setdiff1d(order, test)
            try:
                w = fit_linear(fa[train], fb[train], p_a[train], c=c)
            except ValueError:
                return 1.0
            m = np.clip(1 / (1 + np.exp(-np.asarray(fa[test] @ w - fb[test] @ w).ravel())), 1e-6, 1 - 1e-6)
            loss += float(-np.sum(p_a[test] * np.log(m) + (1 - p_a[test]) * np.log(1 - m)))
        if loss < best_loss:
            best, best_loss = c, loss
    return best
