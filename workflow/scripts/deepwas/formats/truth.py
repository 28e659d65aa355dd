"""The demo's true prior (`resources/demo/truth/{trait}.tsv.gz`): chromosome, position, allele1, allele2, f.

Written by the demo cohort (`simulation.cohort`), read by the evaluation of the 'oracle' model.
"""
from __future__ import annotations

import pandas as pd

from ..harmonise import variant_key
from ..io import write_table

KEY_COLUMNS = ["chromosome", "position", "allele1", "allele2"]


def write_truth(path, variants: pd.DataFrame, f) -> None:
    """Write f of the variants (a table with the KEY_COLUMNS, in the order of f)."""
    t = variants[KEY_COLUMNS].reset_index(drop=True)
    t["f"] = f
    write_table(path, t)


def read_truth(path) -> pd.Series:
    """f indexed by `harmonise.variant_key`."""
    t = pd.read_csv(path, sep="\t", dtype={"chromosome": str})
    missing = [c for c in KEY_COLUMNS + ["f"] if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: truth table lacks column(s) {missing}; rerun the demo_cohort rule")
    return pd.Series(t["f"].to_numpy(), index=variant_key(t))
