"""Training on streamed windows (App. A.3 at UKBB scale): `sources.StreamingWindows` through `Trainer`.

Five overlapping windows cut from an msprime LD matrix are written as factor files, manifest and whitened
statistics, with an annotation table and a two-track store (+ liftover table, normalisation JSON). The
streaming source must yield the same WindowData as the in-memory path (`load_windows` + `make_window`), and
training on it must end with the same parameters: exactly, when its order is `window_order`'s (run_length 1,
any number of workers). With runs of neighbours (run_length > 1) the order is another deterministic
function of (seed, epoch, run_length, num_workers): an in-memory list trained in that order gives the same
parameters, and a run killed mid-epoch and resumed ends identical.
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch

from deepwas.features.pred import FeatureScaler, pred_feature_names
from deepwas.formats.ukbb_ld import write_ld_window
from deepwas.formats.whitened import WhitenedStats
from deepwas.harmonise import variant_key
from deepwas.ldsr import LdsrExtras
from deepwas.sources import InMemoryWindows, StreamingWindows, fit_scaler_streaming, load_windows, use_streaming
from deepwas.window import make_window
from deepwas.features.normalise import write_normalisation
from deepwas.features.tracks import build_track_store
from deepwas.features.variants import VariantTracks
from deepwas.ld_factors import PSDLimits
from deepwas.priors import build_prior
from deepwas.training import TrainConfig, Trainer
from deepwas.windows import Window, core_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
import ld_factors as ld_factors_script  # noqa: E402
import whiten as whiten_script  # noqa: E402

N, S2, W, L = 2_000.0, 0.8, 16, 9_000
WIN_LENGTH, WIN_STRIDE = 2_400, 960             # 40 variants 60 bp apart, cores of 16


@pytest.fixture(scope="module")
def disk(msprime_ld, torch_one_thread, tmp_path_factory):
    """Windows in the UKBB layout through the rule scripts (ld_factors, then whiten for a trait that lacks a few
    variants, so that some windows carry the trait's restricted factors)."""
    root = tmp_path_factory.mktemp("stream")
    R = msprime_ld(n_people=100, length=100_000, seed=3)
    rng = np.random.default_rng(0)
    n_var = R.shape[0]
    pos37 = 100 + 60 * np.arange(n_var)
    variants = pd.DataFrame({"rsid": [f"rs{k}" for k in range(n_var)], "chromosome": "1", "position": pos37,
                             "allele1": "A", "allele2": "G"})
    keys_all = variant_key(variants).to_numpy()
    pos38 = (pos37 + 7).astype(float)
    pos38[::9] = np.nan                                            # unmapped
    pos38[-3:] = L + 50                                            # beyond the store's chromosome
    freq_all = rng.uniform(0.05, 0.95, size=n_var)
    wins = [Window.parse(f"chr1_{s}_{s + WIN_LENGTH}") for s in range(1, 5 * WIN_STRIDE, WIN_STRIDE)]
    prefixes = []
    for w in wins:
        idx = np.flatnonzero((pos37 >= w.start) & (pos37 < w.end))
        write_ld_window(root / "ld" / w.name, R[np.ix_(idx, idx)], variants.iloc[idx].reset_index(drop=True))
        prefixes.append(str(root / "ld" / w.name))
    table = pd.DataFrame({"name": [w.name for w in wins], "chromosome": "1", "start": [w.start for w in wins],
                          "end": [w.end for w in wins], "kind": "npz"})
    core_table(table, WIN_LENGTH, WIN_STRIDE).to_csv(root / "cores.tsv", sep="\t", index=False)
    ld_factors_script.main(prefixes, root / "cores.tsv", root / "factors", root / "manifest.tsv", 1e-6, 1e-4,
                           PSDLimits(), panel_size=100)
    keep = np.ones(n_var, dtype=bool)
    keep[[20, 21, 50]] = False                                     # the trait lacks three core variants
    variants.assign(z=rng.normal(size=n_var) * 1.3, n=N, eaf=freq_all)[keep].to_csv(root / "t.tsv", sep="\t",
                                                                                   index=False)
    whiten_script.main(str(root / "t.tsv"), str(root / "factors"), str(root / "manifest.tsv"),
                       str(root / "stats.npz"), rtol=1e-6)
    ann = pd.DataFrame({"a": rng.normal(size=n_var), "b": rng.uniform(size=n_var)}, index=keys_all).iloc[5:]
    bws = []
    for t in ["t0", "t1"]:
        p = root / f"{t}.bw"
        bw = pyBigWig.open(str(p), "w")
        bw.addHeader([("1", L)], maxZooms=0)
        bw.addEntries("1", 0, values=(rng.normal(size=L // 5) + (t == "t1") * 3).tolist(), span=5, step=5)
        bw.close()
        bws.append((t, str(p)))
    build_track_store(bws, {"1": L}, root / "store", dtype=np.float32)
    write_normalisation(root / "store", ["1"], root / "norm.json")
    lift = pd.DataFrame({"chromosome": "1", "position": pos37, "allele1": "A", "allele2": "G", "POS38": pos38,
                         "liftover_status": np.where(np.isnan(pos38), "unmapped", "ok")})
    lift.to_csv(root / "lift.tsv", sep="\t", index=False)
    tracks = VariantTracks(root / "store", {"1": root / "lift.tsv"}, root / "norm.json", W)
    return [(root / "factors", root / "manifest.tsv", root / "stats.npz")], ann, tracks


def _in_memory(chrom_inputs, ann, tracks):
    loaded = load_windows(chrom_inputs, ann, tracks)
    scaler = FeatureScaler.fit(pred_feature_names(list(ann.columns), True), [p for *_, p in loaded])
    return [make_window(n, f, st["y"], scaler.transform(p)) for n, f, st, p in loaded], scaler


def _train(source, root, kill_at=None, model="transformer"):
    torch.manual_seed(123)
    prior = build_prior(model, 6, 2, init_log_scale=-6.0, network=dict(size="tiny", w=W))
    cfg = TrainConfig.from_config(model, epochs=2, lr=2e-3, warmup_steps=3, accumulate=2, clip_grad_norm=1.0,
                                  seed=5, checkpoint_every=1, progress=False)
    tr = Trainer(prior, source, N, S2, cfg, root / "ckpt", root / "metrics.tsv")
    out = tr.fit(stop_after_windows=kill_at)
    return prior, out


def _rows(path):
    with open(path) as fh:
        return [r[:-1] for r in csv.reader(fh, delimiter="\t")]


def _assert_same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_streamed_windows_equal_in_memory_windows(disk):
    chrom_inputs, ann, tracks = disk
    mem, scaler = _in_memory(chrom_inputs, ann, tracks)
    fitted, counts = fit_scaler_streaming(chrom_inputs, ann, tracks)
    assert fitted.names == scaler.names
    np.testing.assert_allclose(fitted.mean, scaler.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fitted.sd, scaler.sd, rtol=1e-12)
    assert counts["n_missing_tracks"] > 0 and counts["n_variants"] == sum(w.m for w in mem)
    src = StreamingWindows(chrom_inputs, ann, tracks, scaler=scaler, run_length=1, num_workers=0)
    assert len(src) == 5 and src.names == [w.name for w in mem] and src.order_key is None
    with WhitenedStats(chrom_inputs[0][2]) as st:                 # the trait's own factors in some windows
        assert 0 < sum(st.restricted(n) for n in src.names) < 5
    assert src.mean_n_core == np.mean([w.n_core for w in mem])
    by_name = {w.name: w for w in mem}
    got = list(src.iter_epoch(5, 0))
    assert [w.name for w in got] == src.order(5, 0) == [mem[i].name for i in InMemoryWindows(mem).order(5, 0)]
    for w in got:
        ref = by_name[w.name]
        for a, b in [(w.G, ref.G), (w.lam, ref.lam), (w.y, ref.y)] + [(w.inputs[k], ref.inputs[k]) for k in ref.inputs]:
            assert a.dtype == b.dtype and torch.equal(a, b)
        assert w.n_core == ref.n_core
    assert [w.name for w in src.iter_epoch(5, 1, start=3)] == src.order(5, 1)[3:]
    ex = LdsrExtras(chrom_inputs)[mem[0].name]
    assert ex[0].shape == (mem[0].n_core, mem[0].m)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_training_on_streamed_windows_equals_in_memory(disk, tmp_path, num_workers):
    chrom_inputs, ann, tracks = disk
    mem, scaler = _in_memory(chrom_inputs, ann, tracks)
    ref, _ = _train(mem, tmp_path / "mem")
    src = StreamingWindows(chrom_inputs, ann, tracks, scaler=scaler, run_length=1, num_workers=num_workers)
    got, out = _train(src, tmp_path / "stream")
    assert out["steps"] == 6
    _assert_same(ref, got)
    assert _rows(tmp_path / "mem" / "metrics.tsv") == _rows(tmp_path / "stream" / "metrics.tsv")


def test_runs_of_neighbours_deterministic_and_resumable(disk, tmp_path):
    chrom_inputs, ann, tracks = disk
    mem, scaler = _in_memory(chrom_inputs, ann, tracks)
    src = StreamingWindows(chrom_inputs, ann, tracks, scaler=scaler, run_length=2, num_workers=2)
    assert src.order_key == "runs2-workers2"
    for start in range(6):                                       # every start position continues the order
        assert [w.name for w in src.iter_epoch(5, 1, start=start)] == src.order(5, 1)[start:]
    ref, _ = _train(src, tmp_path / "ref")
    idx = {w.name: i for i, w in enumerate(mem)}
    same_order = InMemoryWindows(mem, order=lambda s, e: [idx[n] for n in src.order(s, e)], order_key=src.order_key)
    _assert_same(ref, _train(same_order, tmp_path / "mem")[0])
    _, out = _train(src, tmp_path / "run", kill_at=8)             # epoch 1, off a checkpoint
    assert out["stopped"] is True
    resumed, out = _train(src, tmp_path / "run")
    assert out["steps"] == 6
    _assert_same(ref, resumed)
    assert _rows(tmp_path / "run" / "metrics.tsv") == _rows(tmp_path / "ref" / "metrics.tsv")


def test_use_streaming(disk):
    chrom_inputs, _, tracks = disk
    assert use_streaming("true", chrom_inputs, None) and not use_streaming(False, chrom_inputs, tracks)
    assert not use_streaming("auto", chrom_inputs, tracks)                      # a few kB of tracks
    assert use_streaming("auto", chrom_inputs, tracks, limit_bytes=1000)
    assert not use_streaming("auto", chrom_inputs, None, limit_bytes=0)
    with pytest.raises(ValueError):
        use_streaming("maybe", chrom_inputs, tracks)


def test_shared_forward_on_streamed_windows(disk, tmp_path):
    # streamed windows carry the factor files' variant keys for the shared forward; killed mid-epoch and
    # resumed it ends identical
    chrom_inputs, ann, tracks = disk
    mem, scaler = _in_memory(chrom_inputs, ann, tracks)
    src = StreamingWindows(chrom_inputs, ann, tracks, scaler=scaler, run_length=2, num_workers=2)
    got = {w.name: w for w in src.iter_epoch(5, 0)}
    for w in mem:
        assert np.array_equal(got[w.name].variants, w.variants) and len(w.variants) == w.m

    def train(root, kill_at=None):
        torch.manual_seed(123)
        prior = build_prior("transformer", 6, 2, init_log_scale=-6.0, network=dict(size="tiny", w=W))
        cfg = TrainConfig.from_config("transformer", epochs=2, lr=2e-3, warmup_steps=3, accumulate=2,
                                      clip_grad_norm=1.0, seed=5, checkpoint_every=1, progress=False,
                                      shared_forward=True)
        out = Trainer(prior, src, N, S2, cfg, root / "ckpt", root / "metrics.tsv").fit(stop_after_windows=kill_at)
        return prior, out

    ref, out = train(tmp_path / "ref")
    # a variant in two neighbouring windows has one row of features: the LD-score feature is its own core
    # window's (the ld_factors rule), so the shared forward merges the rows of neighbours in one step
    assert out["distinct_rows"] < out["rows"] == 2 * sum(w.m for w in mem)
    a, b = mem[0], mem[1]
    shared = [k for k in b.variants if k in set(a.variants)]
    assert len(shared) > 10
    ia = [list(a.variants).index(k) for k in shared]
    ib = [list(b.variants).index(k) for k in shared]
    for col in ("tracks", "pred", "freq"):
        assert torch.equal(a.inputs[col][ia], b.inputs[col][ib])
    _, stopped = train(tmp_path / "run", kill_at=3)
    assert stopped == {"stopped": True}
    again, _ = train(tmp_path / "run")
    _assert_same(ref, again)
    assert _rows(tmp_path / "ref" / "metrics.tsv") == _rows(tmp_path / "run" / "metrics.tsv")
