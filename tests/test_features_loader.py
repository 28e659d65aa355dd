"""Training-window loader: deterministic run order, overlap reuse, workers (App. A.3 at UKBB scale)."""
import functools

import numpy as np
import pyBigWig
import pytest
import torch

from deepwas.features.loader import FeatureCache, WindowDataset, make_loader, run_order
from deepwas.features.tracks import build_track_store, gather_windows, open_track_store

L = 30_000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loader")
    rng = np.random.default_rng(0)
    bws = []
    for name in ["t0", "t1"]:
        p = tmp / f"{name}.bw"
        bw = pyBigWig.open(str(p), "w")
        bw.addHeader([("chr1", L)], maxZooms=0)
        bw.addEntries("chr1", 0, values=rng.normal(size=L // 5).tolist(), span=5, step=5)
        bw.close()
        bws.append((name, str(p)))
    build_track_store(bws, {"chr1": L}, tmp / "store", dtype=np.float32)
    return open_track_store(tmp / "store")


def _windows():
    """10 windows of length 3000 stride 1000 over chr1 (overlap two thirds), ~40 variants each."""
    rng = np.random.default_rng(1)
    allpos = np.sort(rng.choice(np.arange(1, L), 400, replace=False))
    table = {}
    for k in range(10):
        s = 1 + 1000 * k
        sel = (allpos >= s) & (allpos < s + 3000)
        pos = allpos[sel].copy()
        pos[::13] = -1                                   # a few unmapped
        table[f"chr1_{s}_{s + 3000}"] = {"chrom": "chr1", "pos_grch38": pos, "G": rng.normal(size=(pos.size, 3))}
    return table


class Loader:
    def __init__(self, table):
        self.table = table

    def __call__(self, name):
        return self.table[name]


def test_run_order_deterministic_and_complete():
    a = run_order(10, 3, seed=5, epoch=0)
    assert a == run_order(10, 3, seed=5, epoch=0)
    assert sorted(i for r in a for i in r) == list(range(10))
    assert all(r == list(range(r[0], r[0] + len(r))) for r in a)       # runs of neighbours
    assert a != run_order(10, 3, seed=5, epoch=1) or a != run_order(10, 3, seed=6, epoch=0)


def test_items_match_direct_gather_and_reuse(store):
    table = _windows()
    names = list(table)
    gather = functools.partial(gather_windows, store, w=32)
    mean, sd = np.array([0.1, -0.2], np.float32), np.array([2.0, 0.5], np.float32)
    ds = WindowDataset(names, Loader(table), gather, seed=3, run_length=5, normalisation=(mean, sd))
    seen = []
    for item in ds:
        name = item["window"]
        seen.append(name)
        pos = table[name]["pos_grch38"]
        direct, miss = gather_windows(store, "chr1", pos, w=32)
        expect = (direct - mean[None, :, None]) / sd[None, :, None]
        expect[miss] = 0
        assert isinstance(item["features"], torch.Tensor)
        np.testing.assert_allclose(item["features"].numpy(), expect, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(item["features_missing"].numpy(), miss.astype(np.float32))
        assert miss[pos == -1].all()
    assert seen == ds.order(0) and sorted(seen) == sorted(names)
    assert ds.cache.n_reused > ds.cache.n_gathered            # two-thirds overlap reused


def test_feature_cache_exact_on_chrom_switch(store):
    calls = []

    def gather(chrom, pos):
        calls.append(len(pos))
        return gather_windows(store, chrom, pos, w=8)

    c = FeatureCache(gather)
    a, _ = c("chr1", np.array([100, 50, 200]))
    b, mb = c("chr1", np.array([200, 300, -1, 100]))
    assert calls == [3, 1]
    np.testing.assert_array_equal(b, gather_windows(store, "chr1", np.array([200, 300, -1, 100]), w=8)[0])
    assert mb.tolist() == [False, False, True, False]
    c("chrX", np.array([200]))
    assert calls == [3, 1, 1]


def test_workers_deterministic(store):
    table = _windows()
    ds = WindowDataset(list(table), Loader(table), functools.partial(gather_windows, store, w=16),
                       seed=7, run_length=2)
    got1 = [it["window"] for it in make_loader(ds, num_workers=2, prefetch_factor=2)]
    got2 = [it["window"] for it in make_loader(ds, num_workers=2, prefetch_factor=2)]
    assert got1 == got2 == ds.order(2)
    assert sorted(got1) == sorted(table)


def test_feature_cache_all_unmapped_first(store):
    c = FeatureCache(functools.partial(gather_windows, store, w=8))
    f, m = c("chr1", np.array([-1, -1]))
    assert f.shape == (2, 2, 8) and m.all() and not f.any()


def _awkward_windows():
    """`_windows` plus duplicated positions and a window on a chromosome the store lacks (all missing)."""
    table = _windows()
    for k, name in enumerate(list(table)):
        pos = table[name]["pos_grch38"]
        if k % 3 == 0 and pos.size > 6:
            pos[5] = pos[4] if pos[4] > 0 else pos[6]          # the same variant twice in one window
    pos = table["chr1_5001_8001"]["pos_grch38"].copy()
    table["chr2_1_3001"] = {"chrom": "chr2", "pos_grch38": pos, "G": np.zeros((pos.size, 3))}
    return table


@pytest.mark.parametrize("normalised", [False, True])
def test_prefetching_reusing_loader_yields_the_plain_loaders_tensors(store, normalised):
    """Reuse of the previous window's rows, the background-thread prefetch and worker processes change
    nothing in the items: every tensor equals the plain loader's (each window gathered afresh, in order)."""
    table = _awkward_windows()
    names = sorted(table, key=lambda n: (n.split("_")[0], int(n.split("_")[1])))
    gather = functools.partial(gather_windows, store, w=16)
    norm = (np.array([0.1, -0.2], np.float32), np.array([2.0, 0.5], np.float32)) if normalised else None
    kw = dict(seed=4, run_length=4, normalisation=norm)
    plain = {it["window"]: it for it in WindowDataset(names, Loader(table), gather, reuse=False, **kw)}
    reusing = WindowDataset(names, Loader(table), gather, **kw)
    fast = list(make_loader(reusing, num_workers=0, prefetch_factor=2))
    assert [it["window"] for it in fast] == reusing.order(0)
    assert reusing.cache.n_reused > reusing.cache.n_gathered
    workers = list(make_loader(WindowDataset(names, Loader(table), gather, **kw), num_workers=2, prefetch_factor=2))
    for got in (fast, workers):
        assert sorted(it["window"] for it in got) == sorted(names)
        for it in got:
            ref = plain[it["window"]]
            assert it["features"].dtype == torch.float32
            assert torch.equal(it["features"], ref["features"]), it["window"]
            assert torch.equal(it["features_missing"], ref["features_missing"]), it["window"]
    # consumed one at a time (each item dropped before the next): the output buffers are recycled, and the
    # items still equal the plain ones (every row of a recycled buffer is rewritten)
    recycled = WindowDataset(names, Loader(table), gather, **kw)
    n = 0
    for it in make_loader(recycled, num_workers=0, prefetch_factor=1):
        ref = plain[it["window"]]
        assert torch.equal(it["features"], ref["features"]) and torch.equal(it["features_missing"], ref["features_missing"])
        del it, ref
        n += 1
    assert n == len(names) and len(recycled.cache._pool) <= 5 < n
    # and the plain items are the direct gather (normalised, missing rows 0)
    for name, it in plain.items():
        direct, miss = gather_windows(store, table[name]["chrom"], table[name]["pos_grch38"], w=16)
        if normalised:
            direct = (direct - norm[0][None, :, None]) / norm[1][None, :, None]
            direct[miss] = 0
        np.testing.assert_allclose(it["features"].numpy(), direct, rtol=1e-6, atol=1e-6)
        assert it["features_missing"].numpy().tolist() == miss.astype(np.float32).tolist()
    assert plain["chr2_1_3001"]["features_missing"].numpy().all()


def test_prefetch_thread_keeps_order_and_raises_where_the_source_failed():
    from deepwas.features.loader import Prefetch

    def source():
        for i in range(5):
            if i == 3:
                raise KeyError("window 3 unreadable")
            yield i

    it = Prefetch(source(), depth=2)
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    with pytest.raises(KeyError, match="window 3"):
        next(it)
    assert list(Prefetch(range(7), depth=3)) == list(range(7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA (none here)")
def test_features_pinned_when_cuda_is_available(store):
    table = _windows()
    ds = WindowDataset(list(table), Loader(table), functools.partial(gather_windows, store, w=16), seed=1)
    assert all(it["features"].is_pinned() for it in ds)


def test_prefetch_thread_stops_when_the_consumer_drops_it():
    import gc

    from deepwas.features.loader import Prefetch

    it = Prefetch(iter(range(10**9)), depth=2)
    assert next(it) == 0
    thread = it._thread
    del it
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()
    closed = Prefetch(iter(range(10**9)), depth=1)
    next(closed)
    closed.close()
    closed._thread.join(timeout=5)
    assert not closed._thread.is_alive()
