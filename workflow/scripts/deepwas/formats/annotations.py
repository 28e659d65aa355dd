"""The optional per-variant annotation table (`features.annotations`): part of the d_pred features (App. A.1).

A tab-separated table with columns chromosome, position, allele1, allele2 and any number of numeric
annotation columns, indexed by `harmonise.variant_key`.
"""
from __future__ import annotations

import pandas as pd

from ..harmonise import variant_key

KEY_COLUMNS = ("chromosome", "position", "allele1", "allele2")


def read_annotations(path) -> "pd.DataFrame | None":
    """Optional per-variant annotation table (chromosome position allele1 allele2 + numeric columns)."""
    if not path:
        return None
    t = pd.read_csv(path, sep="\t", dtype={"chromosome": str})
    missing = [c for c in KEY_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: annotation table lacks column(s) {missing}")
    vals = t.drop(columns=list(KEY_COLUMNS))
    bad = [c for c in vals.columns if not pd.api.types.is_numeric_dtype(vals[c])]
    if bad:
        raise ValueError(f"{path}: annotation column(s) {bad} are not numeric")
    return vals.set_index(variant_key(t))
