"""XGBoost's trees as flat NumPy arrays: one walk gives a row's margin and its contributions.

For one application this is faster than a call into XGBoost (`inplace_predict` costs about
90 us whatever the model), and the same walk yields the per-feature contributions the reasons
need (XGBoost's `approx_contribs`: along the row's path every split adds the change of the
cover-weighted node mean to its feature). The margin is summed in float32 in tree order, as
XGBoost sums it, so it equals `inplace_predict(..., predict_type="margin")` bit for bit;
`TreeEnsemble.matches` checks that on sample rows when a model is loaded.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


class TreeEnsemble:
    """The trees of a binary:logistic gbtree booster, every node numbered globally."""

    MAX_ROWS = 16  # above this XGBoost's own batch code is faster

    def __init__(self, booster: Any, iteration_range: tuple[int, int] = (0, 0)):
        learner = json.loads(booster.save_raw("json"))["learner"]
        model = learner["gradient_booster"]["model"]
        trees = model["trees"]
        if iteration_range[1] > 0:
            trees = trees[iteration_range[0]:iteration_range[1]]
        sizes = [len(t["left_children"]) for t in trees]
        self.roots = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
        total = int(sum(sizes))
        self.left = np.empty(total, np.intp)
        self.right = np.empty(total, np.intp)
        self.missing = np.empty(total, np.intp)
        self.feature = np.empty(total, np.intp)
        self.threshold = np.empty(total, np.float32)
        self.value = np.empty(total, np.float32)
        self.mean = np.empty(total, np.float64)
        self.depth = 0
        for root, tree in zip(self.roots, trees, strict=True):
            left, right = np.asarray(tree["left_children"]), np.asarray(tree["right_children"])
            n = len(left)
            ids = np.arange(n)
            leaf = left == -1
            inner = ~leaf
            if (inner & ((left <= ids) | (right <= ids) | (left >= n) | (right >= n))).any():
                raise ValueError("a tree whose children do not follow their parents")
            nodes = slice(root, root + n)
            self.left[nodes] = root + np.where(leaf, ids, left)
            self.right[nodes] = root + np.where(leaf, ids, right)
            default_left = np.asarray(tree["default_left"], dtype=bool)
            self.missing[nodes] = np.where(default_left, self.left[nodes], self.right[nodes])
            self.feature[nodes] = np.where(leaf, 0, tree["split_indices"])
            conditions = np.asarray(tree["split_conditions"], dtype=np.float64)
            self.threshold[nodes] = conditions
            self.value[nodes] = conditions  # a leaf's value; unused on inner nodes
            self.mean[nodes] = _node_means(left, right, conditions,
                                           np.asarray(tree["sum_hessian"], dtype=np.float64))
            self.depth = max(self.depth, _depth(left, right))
        if not (np.isfinite(self.value).all() and np.isfinite(self.mean).all()):
            raise ValueError("a tree with values that are not finite numbers")
        self.n_features = int(booster.num_features())
        base = np.float32(float(str(learner["learner_model_param"]["base_score"]).strip("[]")))
        with np.errstate(divide="ignore"):
            self.base_margin = np.float32(-np.log(np.float32(1) / base - np.float32(1)))
        self.simple = (learner["gradient_booster"].get("name") == "gbtree"
                       and learner["objective"]["name"] == "binary:logistic"
                       and all(int(t.get("tree_param", {}).get("size_leaf_vector", 1)) <= 1
                               for t in trees))
        self._edges()

    def _edges(self) -> None:
        """The walk's steps as edges, node n's left edge 2n and its right edge 2n + 1, and every
        node array repeated for both edges: a walk keeps each tree's current node as its left
        edge. An edge carries its parent's feature and its change of the node mean (a leaf's
        two edges lead back to it: feature 0, change 0)."""
        child = np.stack([self.left, self.right], axis=1).reshape(-1)
        self._first_edges = 2 * self.roots
        self._child_edge = 2 * child  # the left edge of the node an edge leads to
        self._edge_feature = np.repeat(self.feature, 2)
        self._edge_threshold = np.repeat(self.threshold, 2)
        self._edge_value = np.repeat(self.value, 2)
        self._edge_missing_right = np.repeat(self.missing != self.left, 2)
        self._edge_delta = self.mean[child] - np.repeat(self.mean, 2)

    def walk(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        """One row's margin (float32, as XGBoost) and per-feature contributions (no bias)."""
        x = np.asarray(row, dtype=np.float32)
        nan = bool(np.isnan(x).any())
        feature, threshold = self._edge_feature, self._edge_threshold
        at = self._first_edges
        taken = np.empty((self.depth, len(at)), dtype=np.intp)  # the edges, level by level
        for level in range(self.depth):
            v = x[feature[at]]
            right = v >= threshold[at]  # left when v < threshold
            if nan:
                right = np.where(np.isnan(v), self._edge_missing_right[at], right)
            at = self._child_edge[np.add(at, right, out=taken[level])]
        leaves = np.concatenate(([self.base_margin], self._edge_value[at]))
        margin = float(np.add.accumulate(leaves, dtype=np.float32)[-1])  # XGBoost's order
        edges = taken.reshape(-1)  # level by level, tree by tree: the sums' order
        return margin, np.bincount(self._edge_feature[edges], weights=self._edge_delta[edges],
                                   minlength=self.n_features)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """(n_rows, n_features) contributions in margin (log-odds) units, without the bias."""
        return np.vstack([self.walk(r)[1] for r in rows]) if len(rows) else \
            np.zeros((0, self.n_features))

    def matches(self, booster: Any, rows: np.ndarray, iteration_range: tuple[int, int]) -> bool:
        """Whether the walk's margins equal XGBoost's own, bit for bit, on these rows."""
        if not self.simple:
            return False
        theirs = booster.inplace_predict(np.asarray(rows, dtype=np.float32), predict_type="margin",
                                         iteration_range=iteration_range, validate_features=False)
        ours = np.array([self.walk(r)[0] for r in rows], dtype=np.float32)
        return bool(np.array_equal(ours, np.asarray(theirs, dtype=np.float32).reshape(-1)))


def _node_means(left: np.ndarray, right: np.ndarray, value: np.ndarray,
                cover: np.ndarray) -> np.ndarray:
    """Cover-weighted mean leaf value under each node (children have higher ids)."""
    mean = value.astype(np.float64).copy()
    for node in range(len(left) - 1, -1, -1):
        if left[node] != -1:
            lo, hi = left[node], right[node]
            mean[node] = (cover[lo] * mean[lo] + cover[hi] * mean[hi]) / cover[node]
    return mean


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, frontier = 0, [0]
    while any(left[n] != -1 for n in frontier):
        frontier = [c for n in frontier if left[n] != -1 for c in (left[n], right[n])]
        depth += 1
    return depth
