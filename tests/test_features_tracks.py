"""Track store and window gather against pyBigWig.values (paper App. D.3)."""
import json

import numpy as np
import pyBigWig
import pytest

from deepwas.features.tracks import (
    TrackStoreError, build_track_store, gather_windows, gather_windows_multi, open_track_store)

SIZES = {"chr1": 5000, "chr2": 3001}


def _write_bw(path, sizes, seed, float16_exact=False, gaps=True):
    """A bigWig with bedGraph-like intervals, gaps and (optionally) values exact in float16."""
    rng = np.random.default_rng(seed)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()), maxZooms=0)
    for c, L in sizes.items():
        pos = 0
        starts, ends, vals = [], [], []
        while pos < L:
            step = int(rng.integers(1, 40))
            if gaps and rng.random() < 0.2:      # leave a gap (NaN in values())
                pos += step
                continue
            e = min(L, pos + step)
            v = rng.normal(0, 3)
            if float16_exact:
                v = float(np.float16(v))
            starts.append(pos); ends.append(e); vals.append(v)
            pos = e
        bw.addEntries([c] * len(starts), starts, ends=ends, values=vals)
    bw.close()


@pytest.fixture
def bigwigs(tmp_path):
    out = []
    for k, name in enumerate(["phyloP", "eclipA", "cage_fwd", "eclipB"]):
        p = tmp_path / f"{name}.bw"
        _write_bw(p, SIZES if name != "cage_fwd" else {"chr1": 5000}, seed=k, float16_exact=True)
        out.append((name, str(p)))
    return out


def _reference(bigwigs, chrom, L, eclip=("eclipA", "eclipB")):
    """Dense [L, d] reference in the store's track order straight from pyBigWig.values."""
    cols, names = [], []
    ecl = np.zeros(L)
    placed = False
    for name, path in bigwigs:
        bw = pyBigWig.open(path)
        if chrom in bw.chroms():
            v = np.nan_to_num(np.array(bw.values(chrom, 0, L)), nan=0.0)
        else:
            v = np.zeros(L)
        bw.close()
        if name in eclip:
            ecl += v
            if not placed:
                names.append("all_eCLIP"); cols.append(None); placed = True
        else:
            names.append(name); cols.append(v)
    cols = [ecl if c is None else c for c in cols]
    return names, np.stack(cols, axis=1)


def test_store_float32_gather_matches_pybigwig_exactly(tmp_path, bigwigs):
    meta = build_track_store(bigwigs, SIZES, tmp_path / "store", dtype=np.float32,
                             eclip_group=["eclipA", "eclipB"], block=1000)
    store = open_track_store(tmp_path / "store")
    names, ref = _reference(bigwigs, "chr1", SIZES["chr1"])
    assert store.track_names == names == ["phyloP", "all_eCLIP", "cage_fwd"]
    assert meta["sources"]["phyloP"]["md5"] and len(meta["sources"]["phyloP"]["md5"]) == 32
    w = 256
    rng = np.random.default_rng(0)
    L = SIZES["chr1"]
    pos = np.concatenate([rng.integers(1, L + 1, 200), [1, 2, 128, 129, L - 127, L - 128, L - 1, L]])
    rng.shuffle(pos)                                       # unsorted input
    pos = np.concatenate([pos, [-1, 0, L + 1]])            # unmapped / out of range
    win, missing = gather_windows(store, "chr1", pos, w=w)
    assert win.shape == (pos.size, 3, w) and win.dtype == np.float32
    assert missing.tolist() == [False] * (pos.size - 3) + [True] * 3
    assert not win[-3:].any()
    refp = np.pad(ref, ((w, w), (0, 0)))                   # zero beyond chromosome ends
    for i, p in enumerate(pos[:-3]):
        s = p - 1 - w // 2 + w
        expect = refp[s:s + w].T.astype(np.float32)
        np.testing.assert_array_equal(win[i], expect)
        # the variant's own base is at index w//2
        np.testing.assert_array_equal(win[i][:, w // 2], ref[p - 1].astype(np.float32))


def test_float16_store_exact_for_float16_values(tmp_path, bigwigs):
    """Values exactly representable in float16 survive float16 storage bit-exactly (single tracks);
    the eCLIP sum is compared after rounding to float16."""
    build_track_store(bigwigs, SIZES, tmp_path / "s16", eclip_group=["eclipA", "eclipB"])
    store = open_track_store(tmp_path / "s16")
    names, ref = _reference(bigwigs, "chr2", SIZES["chr2"])
    pos = np.array([1, 500, 3001, 3000, 17])
    win, missing = gather_windows(store, "chr2", np.ma.masked_array(pos, mask=[0, 0, 0, 0, 1]), w=16)
    assert missing.tolist() == [False, False, False, False, True]
    refp = np.pad(ref, ((16, 16), (0, 0)))
    for i, p in enumerate(pos[:4]):
        s = p - 1 - 8 + 16
        expect = refp[s:s + 16].T.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(win[i], expect)
    # cage_fwd has no chr2: zeros, reported
    rep = store.meta["build_report"]
    assert "cage_fwd:chr2" in rep["cage_fwd"]["chroms_missing"]
    assert not win[:, 2].any()


def test_coverage_counts(tmp_path, bigwigs):
    meta = build_track_store(bigwigs[:1], SIZES, tmp_path / "s", block=777)
    bw = pyBigWig.open(bigwigs[0][1])
    covered = sum(int(np.isfinite(np.array(bw.values(c, 0, L))).sum()) for c, L in SIZES.items())
    r = meta["build_report"]["phyloP"]
    assert r["covered_bases"] == covered
    assert r["n_nan_or_gap"] == sum(SIZES.values()) - covered
    on_disk = json.loads((tmp_path / "s" / "tracks.json").read_text())
    assert on_disk["track_names"] == ["phyloP"]


def test_unknown_chrom_and_multi(tmp_path, bigwigs):
    build_track_store(bigwigs, SIZES, tmp_path / "s", dtype=np.float32)
    store = open_track_store(tmp_path / "s")
    win, miss = gather_windows(store, "chrX", np.array([10, 20]), w=8)
    assert miss.all() and not win.any()
    chroms = np.array(["chr2", "chr1", "chrX", "chr1"])
    pos = np.array([100, 200, 5, 4999])
    wm, mm = gather_windows_multi(store, chroms, pos, w=8)
    assert mm.tolist() == [False, False, True, False]
    w1, _ = gather_windows(store, "chr1", np.array([200, 4999]), w=8)
    np.testing.assert_array_equal(wm[[1, 3]], w1)


def test_bad_manifest(tmp_path, bigwigs):
    with pytest.raises(TrackStoreError, match="duplicate"):
        build_track_store(bigwigs + [bigwigs[0]], SIZES, tmp_path / "x")
    with pytest.raises(TrackStoreError, match="does not exist"):
        build_track_store([("a", str(tmp_path / "nope.bw"))], SIZES, tmp_path / "x")


def test_chrom_name_resolution(tmp_path, bigwigs):
    build_track_store(bigwigs[:1], SIZES, tmp_path / "s", dtype=np.float32)
    store = open_track_store(tmp_path / "s")
    a, _ = gather_windows(store, "chr1", np.array([100, 4000]), w=8)
    b, mb = gather_windows(store, "1", np.array([100, 4000]), w=8)
    np.testing.assert_array_equal(a, b)
    assert not mb.any()
