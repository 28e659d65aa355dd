"""LD factors at bounded memory (paper Eqn 5, App. C.1): the core-block factorisation against the dense
formula, float32 paths against float64 (exact-likelihood value and gradient), absolute PSD bounds, and the
LD score of each variant taken from its own core window (the ld_factors rule on an msprime chromosome)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepwas.formats.factors import load_factors
from deepwas.formats.ukbb_ld import read_ld_window, write_ld_window
from deepwas.harmonise import variant_key
from deepwas.ld_factors import LDMatrixError, PSDLimits, factorise, factorise_window, ld_scores, make_psd, whiten
from deepwas.likelihood.exact import nll
from deepwas.ldscore import unbiased_ldscore
from deepwas.simulation.cohort import ld_matrix
from deepwas.windows import Window, core_table, region_intervals

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-6


@pytest.fixture(scope="module")
def cohort(msprime_chromosome):
    chrom = msprime_chromosome(400, 300_000, 11)
    X = chrom.standardised()
    rng = np.random.default_rng(0)
    b = rng.normal(0, 0.05, X.shape[0]) * (rng.random(X.shape[0]) < 0.1)
    z = X @ (X.T @ b + rng.normal(0, 1, X.shape[1])) / np.sqrt(X.shape[1])
    return chrom, X, z


def _window(chrom):
    return pd.DataFrame({"rsid": [f"rs{k}" for k in range(len(chrom.positions))], "chromosome": "1",
                         "position": chrom.positions, "allele1": chrom.allele1, "allele2": chrom.allele2})


def _nll_and_grad(fac, z_core, phi, factor_dtype=np.float64):
    G = fac.G.astype(factor_dtype).astype(np.float64)
    U = fac.U.astype(factor_dtype).astype(np.float64)
    y = whiten(U, fac.lam, z_core)
    phi_t = torch.tensor(phi, requires_grad=True)
    s2 = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    L = nll(phi_t, s2, torch.tensor(G), torch.tensor(y), torch.tensor(fac.lam))
    L.backward()
    return L.item(), phi_t.grad.numpy(), s2.grad.item()


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def _subset(chrom, seed=1):
    """A 90% subset of the variants (those with statistics) and the core (middle 100 kb) within it."""
    m = len(chrom.positions)
    sel = np.sort(np.random.default_rng(seed).choice(m, int(0.9 * m), replace=False))
    pos = chrom.positions[sel]
    return sel, np.flatnonzero((pos >= 100_000) & (pos < 200_000))


def test_core_block_factorisation_matches_the_dense_formula(cohort):
    chrom, X, _ = cohort
    R = ld_matrix(X)
    sel, core = _subset(chrom)
    fac, rep = factorise_window(R, sel, core, rtol=RTOL, block=97)       # several row blocks, non-contiguous core
    Rs = R[np.ix_(sel, sel)]
    W = Rs[:, core] @ np.linalg.pinv(Rs[np.ix_(core, core)], rcond=RTOL, hermitian=True) @ Rs[core]
    np.testing.assert_allclose(fac.G @ fac.G.T, W, atol=1e-8)
    np.testing.assert_allclose(fac.ldscore, (R[sel] ** 2).sum(1), rtol=1e-12)     # over the whole file
    np.testing.assert_allclose(ld_scores(R, block=50), (R * R).sum(1), rtol=1e-12)
    assert fac.rank == int((np.linalg.eigvalsh(Rs[np.ix_(core, core)]) > RTOL * fac.lam.max()).sum())
    assert rep.n_negative >= 0 and rep.clipped_mass < 1e-9
    # the whole-window convenience form is the same computation
    full = factorise(Rs, core, rtol=RTOL)
    np.testing.assert_allclose(full.G @ full.G.T, W, atol=1e-8)


def test_float32_file_gives_the_float64_likelihood(tmp_path, cohort):
    """A float32 .npz held as float32 (compute_dtype auto) factorises to the float64 path's likelihood."""
    chrom, X, z = cohort
    prefix = tmp_path / "chr1_1_300001"
    write_ld_window(prefix, ld_matrix(X), _window(chrom), dtype=np.float32)
    R32, _ = read_ld_window(prefix, dtype="auto")
    R64, _ = read_ld_window(prefix, dtype=np.float64)
    assert R32.dtype == np.float32 and R64.dtype == np.float64
    sel, core = _subset(chrom)
    phi = np.exp(np.random.default_rng(2).normal(0, 0.3, sel.size)) * 0.02
    f32, _ = factorise_window(R32, sel, core, rtol=RTOL)
    f64, _ = factorise_window(R64, sel, core, rtol=RTOL)
    assert f32.rank == f64.rank > 50
    (l32, g32, s32), (l64, g64, s64) = (_nll_and_grad(f, z[sel][core], phi) for f in (f32, f64))
    assert abs(l32 - l64) <= 1e-6 * abs(l64)
    assert _rel(g32, g64) <= 1e-6 and abs(s32 - s64) <= 1e-6 * abs(s64)


def test_float32_factor_storage_within_1e6(cohort):
    """G and U stored as float32 (ld.factor_dtype): NLL and gradients within 1e-6 relative of float64."""
    chrom, X, z = cohort
    sel, core = _subset(chrom)
    fac, _ = factorise_window(ld_matrix(X), sel, core, rtol=RTOL)
    phi = np.exp(np.random.default_rng(3).normal(0, 0.3, sel.size)) * 0.02
    l32, g32, s32 = _nll_and_grad(fac, z[sel][core], phi, np.float32)
    l64, g64, s64 = _nll_and_grad(fac, z[sel][core], phi, np.float64)
    assert abs(l32 - l64) <= 1e-6 * abs(l64)
    assert _rel(g32, g64) <= 1e-6 and abs(s32 - s64) <= 1e-6 * abs(s64)
    assert l32 != l64                     # the rounding is there, and small


def test_doubled_matrix_is_refused_in_absolute_terms(msprime_genotypes):
    """A full matrix stored with 0.5 on the diagonal reads as 2R - I: unit diagonal, eigenvalues down to -1.

    On a window whose largest eigenvalue exceeds 50 the relative bound alone accepts it (the old behaviour);
    the clipped-mass and largest-change bounds refuse it."""
    R = ld_matrix(msprime_genotypes(200, 150_000, 31))
    bad = 2 * R - np.eye(len(R))
    lam = np.linalg.eigvalsh(bad)
    assert lam.min() > -0.01 * lam.max() and lam.min() < -0.99       # passes the relative bound
    _, rep = make_psd(bad, source="w", limits=PSDLimits(0.01, np.inf, np.inf))
    assert rep.n_negative > 300 and rep.clipped_mass > 300 and rep.max_abs_change > 0.5
    with pytest.raises(LDMatrixError, match=r"chr6_25000001_28000001\.npz: .*psd_max_clipped_mass.*already full"):
        make_psd(bad, source="chr6_25000001_28000001.npz")
    with pytest.raises(LDMatrixError, match=r"psd_max_abs_change"):
        make_psd(bad, source="w", limits=PSDLimits(0.01, np.inf, 0.05))
    with pytest.raises(LDMatrixError, match=r"w\.npz: .*psd_max_clipped_mass"):
        factorise_window(bad, np.arange(len(R)), np.arange(100, 300), name="w.npz")
    # small genuine negative eigenvalues pass, with the report filled
    lamR, V = np.linalg.eigh(R)
    lam2 = np.clip(lamR, 1e-2, None)
    lam2[:3] = [-2e-4, -1e-4, -5e-5]
    Rn = (V * lam2) @ V.T
    fac, rep = factorise_window(0.5 * (Rn + Rn.T), np.arange(len(R)), np.arange(len(R)), rtol=RTOL)
    assert rep.n_negative == 3 and rep.clipped_mass == pytest.approx(3.5e-4, rel=1e-6)
    assert 0 < rep.max_abs_change < 1e-3 and fac.rank == len(R) - 3


# --- the ld_factors rule script on a small msprime chromosome ------------------------------------------------

LENGTH, STRIDE = 300_000, 100_000


@pytest.fixture(scope="module")
def chromosome_run(tmp_path_factory, msprime_chromosome, msprime_genotypes):
    sys.path.insert(0, str(ROOT / "workflow/scripts"))
    from ld_factors import main

    tmp = tmp_path_factory.mktemp("ldf")
    chrom = msprime_chromosome(200, 600_000, 5)
    X = msprime_genotypes(200, 600_000, 5)
    variants = _window(chrom)
    wins = [Window.parse(f"chr1_{s}_{s + LENGTH}") for s in range(1, 300_002, STRIDE)]
    prefixes, files = [], {}
    for w in wins:
        idx = np.flatnonzero((chrom.positions >= w.start) & (chrom.positions < w.end))
        prefix = tmp / "ld" / w.name
        prefix.parent.mkdir(exist_ok=True)
        write_ld_window(prefix, ld_matrix(X[idx]), variants.iloc[idx].reset_index(drop=True), dtype=np.float32)
        prefixes.append(str(prefix))
        files[w.name] = idx
    regions = [{"chromosome": "1", "start": 250_000, "end": 320_000}]
    man = pd.DataFrame({"name": [w.name for w in wins], "chromosome": "1", "start": [w.start for w in wins],
                        "end": [w.end for w in wins], "kind": "npz"})
    cores = core_table(man, LENGTH, STRIDE, region_intervals(regions))
    cores.to_csv(tmp / "cores.tsv", sep="\t", index=False)
    rng = np.random.default_rng(0)
    harmonised = []
    for t in range(2):
        keep = rng.random(len(variants)) > 0.05
        tab = variants[keep].assign(eaf=chrom.freq[keep], z=rng.normal(size=int(keep.sum())), n=1000)
        harmonised.append(tmp / f"t{t}.tsv.gz")
        tab.to_csv(harmonised[-1], sep="\t", index=False)
    main(prefixes, tmp / "cores.tsv", tmp / "factors", tmp / "manifest.tsv", RTOL, 1e-4, PSDLimits(), regions,
         compute_dtype="auto", threads=1, panel_size=200)
    return dict(tmp=tmp, wins=wins, files=files, X=X, keys=variant_key(variants).to_numpy(),
                positions=chrom.positions, cores=cores.set_index("window"),
                manifest=pd.read_csv(tmp / "manifest.tsv", sep="\t"))


def test_same_variant_same_ldscore_in_every_window(chromosome_run):
    run = chromosome_run
    seen: dict[str, list[float]] = {}
    naive: dict[str, list[float]] = {}
    for w in run["wins"]:
        fac = load_factors(run["tmp"] / "factors" / f"{w.name}.npz")
        idx = run["files"][w.name]
        R = ld_matrix(run["X"][idx])
        own_file = dict(zip(run["keys"][idx], (R ** 2).sum(1)))
        for k, l in zip(fac["keys"], fac["ldscore"]):
            seen.setdefault(str(k), []).append(float(l))
            naive.setdefault(str(k), []).append(float(own_file[k]))
    multi = [k for k, v in seen.items() if len(v) > 1]
    assert len(multi) > 500
    assert all(np.ptp(seen[k]) <= 1e-6 * max(seen[k]) for k in multi)
    # the per-window values differ for variants near a file edge (what the rule used to store)
    assert sum(np.ptp(naive[k]) > 0.05 * max(naive[k]) for k in multi) > 50
    # and the value is the one computed in the window whose core holds the variant
    key_pos = dict(zip(run["keys"], run["positions"]))
    for k in multi[::25]:
        p = key_pos[k]
        owner = [w for w in run["wins"] if run["cores"].at[w.name, "status"] != "no core: long-range LD"
                 and run["cores"].at[w.name, "core_start"] <= p < run["cores"].at[w.name, "core_end"]]
        if not owner:
            continue            # in the excluded region: the window holding it most centrally
        idx = run["files"][owner[0].name]
        R = ld_matrix(run["X"][idx])
        expected = unbiased_ldscore((R[list(run["keys"][idx]).index(k)] ** 2).sum(), len(idx), 200)
        assert seen[k][0] == pytest.approx(expected, rel=1e-5)        # float32 file vs float64 R


def test_manifest_counts_and_excluded_region(chromosome_run):
    run = chromosome_run
    man = run["manifest"].set_index("window")
    assert (man["status"] == "ok").all()
    assert man["n_long_range"].sum() > 0
    for w in run["wins"]:
        fac = load_factors(run["tmp"] / "factors" / f"{w.name}.npz", ["positions", "core", "ldscore"])
        core_pos = fac["positions"][fac["core"]]
        assert not np.any((core_pos > 250_000) & (core_pos <= 320_000))
        in_region = (fac["positions"] > 250_000) & (fac["positions"] <= 320_000)
        assert int(in_region.sum()) == man.at[w.name, "n_long_range"]
        assert man.at[w.name, "n_core"] == fac["core"].size > 0


def test_reduced_windows_keep_a_seeded_random_run_with_the_standard_ldscores(chromosome_run):
    """Reduced (i)+ ablation (App. A.3): each window keeps the random run of at most max_variants of its LD
    variants (the traits play no part) that random_block draws from (seed, window start), its core the variants at least
    core_margin bp inside the run and outside the long-range-LD regions; every kept variant keeps the LD score
    of its own core window."""
    from ld_factors import main
    from deepwas.windows import random_block

    run = chromosome_run
    tmp = run["tmp"]
    reduced = {"max_variants": 150, "core_margin": 20_000, "seed": 3}
    main([str(tmp / "ld" / w.name) for w in run["wins"]], tmp / "cores.tsv", tmp / "reduced", tmp / "reduced.tsv",
         RTOL, 1e-4, PSDLimits(), [{"chromosome": "1", "start": 250_000, "end": 320_000}], panel_size=200,
         reduced=reduced)
    status = pd.read_csv(tmp / "reduced.tsv", sep="\t").set_index("window")["status"]
    cut = factorised = 0
    for w in run["wins"]:
        idx = run["files"][w.name]
        with_stats = np.ones(idx.size, dtype=bool)
        pos = run["positions"][idx]
        block, in_core = random_block(pos, 150, 20_000, np.random.default_rng([3, w.start]))
        lr = (pos[block] > 250_000) & (pos[block] <= 320_000)                 # the long-range-LD region
        if status[w.name] != "ok":                                            # its whole core in the region
            assert status[w.name].startswith("excluded: empty core") and in_core.any() and not (in_core & ~lr).any()
            cut += int(in_core.sum())
            continue
        factorised += 1
        full = load_factors(tmp / "factors" / f"{w.name}.npz", ["keys", "ldscore"])
        fac = load_factors(tmp / "reduced" / f"{w.name}.npz", ["positions", "keys", "core", "ldscore"])
        assert len(fac["keys"]) == 150 < len(pos)
        np.testing.assert_array_equal(fac["keys"], run["keys"][idx][with_stats][block])
        p = fac["positions"]
        np.testing.assert_array_equal(fac["core"], np.flatnonzero(in_core & ~lr))
        cut += int((in_core & lr).sum())
        assert p[fac["core"]].min() >= p[0] + 20_000 and p[fac["core"]].max() <= p[-1] - 20_000
        standard = dict(zip(full["keys"], full["ldscore"]))
        np.testing.assert_allclose(fac["ldscore"], [standard[k] for k in fac["keys"]], rtol=1e-6)
    assert cut > 0 and factorised >= 2                                        # the region was cut from a core


# --- memory: no whole copy of R --------------------------------------------------------------------------------

def _peak_bytes(fn):
    import tracemalloc
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_factorise_window_allocates_less_than_one_copy_of_R(msprime_genotypes):
    X = msprime_genotypes(200, 600_000, 5)
    R = ld_matrix(X)
    m = len(R)
    assert m > 1500
    core = np.arange(m // 3, m // 3 + 150)
    (fac, _), peak = _peak_bytes(lambda: factorise_window(R, np.arange(m), core, rtol=RTOL, block=128))
    # G (m x r) + one block of rows + the core block: the former R[:, core] / R * R copies were m x m
    assert peak < 0.5 * R.nbytes, (peak / 1e6, R.nbytes / 1e6)
    assert peak > fac.G.nbytes


def test_reader_holds_one_dense_matrix(tmp_path, msprime_chromosome, msprime_genotypes, monkeypatch):
    """At real size a 2,048-row tile is a small part of R; here m is 1,650, so the tile is scaled down."""
    import deepwas.formats.ukbb_ld as ukbb_ld
    monkeypatch.setattr(ukbb_ld, "TILE", 200)
    chrom = msprime_chromosome(200, 600_000, 5)
    R = ld_matrix(msprime_genotypes(200, 600_000, 5))
    prefix = tmp_path / "chr1_1_600001"
    write_ld_window(prefix, R, _window(chrom), dtype=np.float32)
    for dtype, size in ((np.float64, 8), (np.float32, 4)):
        (R2, _), peak = _peak_bytes(lambda: read_ld_window(prefix, dtype=dtype))
        dense = R.size * size
        # the sparse triangle (float32 value + int32 index for m^2 / 2 entries = 4 m^2 B) + ONE dense matrix +
        # scratch (36.5 MB here in float64); the former toarray + astype + M + M^T peaked at 43.6 MB (two
        # float64 copies), and at real size m^2 scales both
        assert peak < dense + 4 * R.size + 0.3 * R.nbytes, (dtype, peak / 1e6, dense / 1e6)
        assert R2.dtype == dtype


def test_thread_limit_reaches_blas():
    """The rule's declared threads bound the BLAS/LAPACK pools of the factorisation."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    sys.path.insert(0, str(ROOT / "workflow/scripts"))
    from ld_factors import thread_limit
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert blas
    with thread_limit(1):
        assert all(p["num_threads"] == 1 for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
