"""Track features of LD-window variants: GRCh37 variant keys -> lifted GRCh38 positions -> normalised windows.

`VariantTracks` joins the three products of the feature rules for one run:

- the track store (`build_track_store`), read through `gather_windows`;
- the per-chromosome liftover tables of the LD variants (rule `liftover_ld_variants`: columns chromosome,
  position, allele1, allele2, POS38, liftover_status);
- the normalisation statistics of the training chromosomes (rule `feature_norm`), checked against the
  store's track order before anything is read (`check_normalisation` names a mismatch).

`__call__(keys)` returns the `[m, d_func, w]` float32 windows of the variants `keys` ('chrom:pos:a1:a2', the
LD factor files' `keys`), each track standardised with the training mean and sd, and a `[m]` bool missing
mask. Variants without a GRCh38 position (unmapped, ambiguous, absent from the liftover table) get all-zero
rows (the training mean) and `missing = True`; the models read the mask as the per-variant feature
`tracks_missing`, never another variant's values. Index `w // 2` of a window holds the variant's own base
(see `features.tracks`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..harmonise import variant_key
from .normalise import check_normalisation, mean_sd_arrays
from .tracks import gather_windows, open_track_store


class VariantTracks:
    """`exclude`: a regular expression; tracks whose name matches it are left out of the windows (the
    ablation without conservation tracks, paper Fig. 6); the store and its normalisation keep them."""

    def __init__(self, store_dir, liftover_tables: Mapping[str, str | Path], normalisation_json, w: int,
                 exclude: str | None = None):
        self.store = open_track_store(store_dir)
        stats = check_normalisation(normalisation_json, self.store)
        self.mean, self.sd = mean_sd_arrays(stats, self.store.track_names)
        self.keep = np.array([i for i, n in enumerate(self.store.track_names)
                              if not (exclude and re.search(exclude, n))], dtype=np.int64)
        if len(self.keep) == 0:
            raise ValueError(f"features.exclude_tracks {exclude!r} leaves out every track of {store_dir} "
                             f"({self.store.track_names}); use a narrower pattern or features.tracks: false")
        self.w = int(w)
        self._pos38: dict[str, pd.Series] = {}
        self._tables = {str(c): Path(p) for c, p in liftover_tables.items()}

    @property
    def track_names(self) -> list[str]:
        return [self.store.track_names[i] for i in self.keep]

    @property
    def d_func(self) -> int:
        return len(self.keep)

    def _positions(self, chrom: str) -> pd.Series:
        if chrom not in self._pos38:
            path = self._tables.get(chrom)
            if path is None:
                raise KeyError(f"no liftover table for chromosome {chrom} (rule liftover_ld_variants makes "
                               f"results/liftover/chr{chrom}.tsv.gz)")
            t = pd.read_csv(path, sep="\t", dtype={"chromosome": str})
            need = {"chromosome", "position", "allele1", "allele2", "POS38"}
            if need - set(t.columns):
                raise ValueError(f"{path}: liftover table lacks column(s) {sorted(need - set(t.columns))}")
            key = variant_key(t)
            self._pos38[chrom] = pd.Series(pd.to_numeric(t["POS38"]).fillna(-1).astype(np.int64).to_numpy(),
                                           index=key.to_numpy())
        return self._pos38[chrom]

    def positions(self, keys) -> tuple[str, np.ndarray]:
        """(chromosome, GRCh38 1-based positions with -1 for unmapped) of variant keys of one chromosome."""
        keys = np.asarray(keys).astype(str)
        chroms = np.unique([k.split(":", 1)[0] for k in keys])
        if len(chroms) != 1:
            raise ValueError(f"variant keys span chromosomes {list(chroms)}; one LD window has one chromosome")
        pos = self._positions(chroms[0]).reindex(keys).fillna(-1).astype(np.int64).to_numpy()
        return str(chroms[0]), pos

    def __call__(self, keys) -> tuple[np.ndarray, np.ndarray]:
        chrom, pos = self.positions(keys)
        win, missing = gather_windows(self.store, chrom, pos, w=self.w)
        if len(self.keep) < self.store.n_tracks:
            win = win[:, self.keep]
        win -= self.mean[None, self.keep, None]
        win /= self.sd[None, self.keep, None]
        win[missing] = 0.0
        return win, missing


def gather_kept(store, chrom, pos, w: int, keep: np.ndarray):
    """`gather_windows` restricted to the track indices `keep` (VariantTracks.keep); picklable for loader workers."""
    win, missing = gather_windows(store, chrom, pos, w=w)
    return (win if len(keep) == store.n_tracks else win[:, keep]), missing
