"""The demo's summary-level GWAS (deepwas.simulation.cohort.summary_gwas / sumstats_from_z) against its definition."""
import numpy as np
import pandas as pd
import pytest

from deepwas.simulation import cohort as simulate
from deepwas.harmonise import correlation_z


def test_summary_gwas_moments(msprime_genotypes):
    X = msprime_genotypes(300, 60_000, 4)[:40]
    n = X.shape[1]
    R = X @ X.T / n
    rng = np.random.default_rng(0)
    beta = rng.normal(0, 0.01, X.shape[0])
    N, s2, draws = 20_000.0, 0.7, 4000
    Z = np.stack([simulate.summary_gwas(X, beta, N, s2, rng) for _ in range(draws)])
    mean = np.sqrt(N) * R @ beta
    # mean sqrt(N) R beta and covariance s2 R, within Monte-Carlo error
    se = np.sqrt(s2 * np.diag(R) / draws)
    assert np.all(np.abs(Z.mean(0) - mean) < 5 * se)
    C = np.cov(Z.T)
    assert np.abs(C - s2 * R).max() < 6 * s2 * np.sqrt(2.0 / draws)
    # z lies in the column space of R: no component outside the span of the panel's genotypes
    Q, _ = np.linalg.qr(X)
    resid = Z[:5] - (Z[:5] @ Q) @ Q.T
    assert np.abs(resid).max() < 1e-8 * np.abs(Z[:5]).max()


def test_sumstats_from_z_round_trips_through_the_harmoniser_scale():
    rng = np.random.default_rng(1)
    N = 50_000.0
    z = rng.normal(0, 4, 500)
    freq = rng.uniform(0.02, 0.98, 500)
    t = simulate.sumstats_from_z(z, freq, N)
    assert list(t.columns) == ["Beta", "se", "P", "EAF"]
    np.testing.assert_allclose(correlation_z(t["Beta"] / t["se"], N), z, rtol=1e-12)
    np.testing.assert_allclose(t["se"], 1 / np.sqrt(2 * freq * (1 - freq) * N))


def test_track_enrichment_active_fractions():
    rng = np.random.default_rng(2)
    W = rng.gamma(1.0, 1.0, (2000, 4, 64)).astype(np.float32)
    t = simulate.track_enrichment(W, [0, 2], [0.25, 0.5], [2.0, 1.0])
    assert set(np.unique(t)) <= {0.0, 1.0, 2.0, 3.0}
    assert abs((t >= 2).mean() - 0.25) < 0.01 and abs(np.isin(t, [1.0, 3.0]).mean() - 0.5) < 0.01


def test_truth_f_adds_the_track_term_and_keeps_h2():
    freq = np.full(4, 0.3)
    ann = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0]})
    f = simulate.truth_f(freq, ann, {"a": np.log(2)}, 0.7, 0.4, extra_logf=np.array([0.0, 0.0, np.log(3), np.log(3)]))
    assert f.sum() == np.float64(0.4) or abs(f.sum() - 0.4) < 1e-15
    np.testing.assert_allclose(f / f[0], [1, 2, 3, 6])


def test_track_truth_config_errors_are_named():
    W = np.zeros((10, 3, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="same length"):
        simulate.track_enrichment(W, [0, 1], [0.5], [1.0, 2.0])
    with pytest.raises(ValueError, match="track index 3 >= 3 demo tracks"):
        simulate.track_enrichment(W, [3], [0.5], [1.0])


# --- the in-sample demo: GWAS of the simulated cohort, LD windows from the same people ---------------------

def test_simulate_chromosome_filters_on_the_trees_like_the_dense_matrix():
    """The frequency filter on the tree sequence and the site-by-site decoding give the variants and allele
    counts of the dense reference: all sites' haplotype matrix, biallelic sites with MAF >= maf_min."""
    import msprime

    n, length, seed, maf = 300, 200_000, 5, 0.05
    ch = simulate.simulate_chromosome("1", length, n, seed, recombination_rate=1e-7, mutation_rate=2e-8,
                                      maf_min=maf)
    rng = np.random.default_rng(seed)
    ts = msprime.sim_ancestry(samples=n, ploidy=2, population_size=1e4, sequence_length=length,
                              recombination_rate=1e-7, random_seed=int(rng.integers(1, 2**31)))
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=int(rng.integers(1, 2**31)))
    H = ts.genotype_matrix()
    bi = np.array([len(s.mutations) == 1 for s in ts.sites()])
    G = H[:, 0::2] + H[:, 1::2]
    p = G.mean(1) / 2
    keep = bi & (np.minimum(p, 1 - p) >= maf)
    assert 50 < keep.sum() < len(keep)                        # the filter removes something and keeps enough
    np.testing.assert_array_equal(ch.positions, ts.tables.sites.position[keep].astype(np.int64) + 1)
    np.testing.assert_array_equal(ch.genotypes, G[keep])
    assert ch.genotypes.dtype == np.uint8


def test_window_ld_equals_each_windows_dense_ld(msprime_chromosome):
    """Shared segment products give every overlapping window the R = X_s X_s^T / n of its own variants."""
    from deepwas.windows import tile

    ch = msprime_chromosome(400, 600_000, 3)
    ws = tile("1", 600_000, 150_000, 50_000)
    out = list(simulate.window_ld(ch, ws))
    assert [w.name for w, _, _ in out] == [w.name for w in ws] and len(out) == 10
    for w, sel, R in out:
        assert sel.sum() == ((ch.positions >= w.start) & (ch.positions < w.end)).sum() > 20
        ref = simulate.ld_matrix(ch.standardised(sel))
        np.testing.assert_allclose(R, ref, atol=1e-5, rtol=0)  # float32 product: far below 1 / sqrt(n)
        np.testing.assert_array_equal(R, R.T)


def test_gwas_in_chunks_is_per_variant_ols(msprime_chromosome):
    ch = msprime_chromosome(300, 300_000, 4)
    G = ch.genotypes
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(G.shape[1], 2)) + 0.3 * ch.standardised()[:2].T
    both = simulate.gwas(G, Y)
    assert G.shape[0] > simulate.CHUNK                          # more than one chunk
    for k in range(2):
        one = simulate.gwas(G, Y[:, k])
        pd.testing.assert_frame_equal(one, both[k])
        for m in (0, 1, G.shape[0] - 1):
            A = np.c_[np.ones(G.shape[1]), G[m].astype(float)]
            coef, rss, *_ = np.linalg.lstsq(A, Y[:, k], rcond=None)
            se = np.sqrt(rss[0] / (G.shape[1] - 2) * np.linalg.inv(A.T @ A)[1, 1])
            assert one["Beta"][m] == pytest.approx(coef[1], rel=1e-9)
            assert one["se"][m] == pytest.approx(se, rel=1e-9)
    assert one["EAF"].to_numpy() == pytest.approx(ch.freq)


def test_in_sample_z_lies_in_the_column_space_of_the_windows_ld(msprime_chromosome):
    """z of an actual GWAS of the panel's own people (on the harmoniser's correlation scale) is
    X_s y / (sqrt(n) sd(y)): inside the column space of R even where R is rank-deficient (m > n)."""
    from deepwas.harmonise import correlation_z

    ch = msprime_chromosome(120, 300_000, 6)
    X = ch.standardised()
    m, n = X.shape
    assert m > n                                          # R = X X^T / n has rank < m
    y = X.T @ np.random.default_rng(0).normal(0, 0.05, m) + np.random.default_rng(1).normal(size=n)
    res = simulate.gwas(ch.genotypes, y)
    z = correlation_z(res["Beta"] / res["se"], n)
    np.testing.assert_allclose(z, X @ (y - y.mean()) / (np.sqrt(n) * y.std()), rtol=1e-8)
    lam, U = np.linalg.eigh(simulate.ld_matrix(X))
    keep = lam > 1e-9 * lam.max()
    assert keep.sum() < m
    resid = z - U[:, keep] @ (U[:, keep].T @ z)
    assert np.abs(resid).max() < 1e-6 * np.abs(z).max()


def test_in_sample_noise_is_s2_r_with_s2_near_one(msprime_chromosome):
    """Paper Sec. 2 in the biobank regime: for a window (chromosome A) of an in-sample GWAS, the effects
    elsewhere (chromosome B) reach z_A only through the cohort's chance correlations. Over beta_B ~ N(0, F_B)
    and eps ~ N(0, 1 - h2), Cov(z_A | beta_A) = X_A (X_B^T F_B X_B + (1 - h2) I) X_A^T / n, which is
    s2 R_A with s2 = 1 - h2_A (about 1), not the (1 - h2) of the whole trait."""
    a, b = msprime_chromosome(1500, 300_000, 8), msprime_chromosome(1500, 600_000, 9)
    XA, XB = a.standardised(), b.standardised()
    n = XA.shape[1]
    h2_a, h2_b = 0.05, 0.45
    f_b = np.random.default_rng(2).gamma(0.5, 1.0, XB.shape[0])
    f_b *= h2_b / f_b.sum()
    RA = XA @ XA.T / n
    XBA = XB @ XA.T / np.sqrt(n)                               # [M_B, M_A]
    C = XBA.T @ (f_b[:, None] * XBA) + (1 - h2_a - h2_b) * RA
    s2 = np.sum(C * RA) / np.sum(RA * RA)                      # least-squares s2 of C = s2 R_A
    assert s2 == pytest.approx(1 - h2_a, abs=0.05)
    assert abs(s2 - (1 - h2_a - h2_b)) > 0.4                # not the whole trait's 1 - h2


# --- the demo_cohort rule: simulations in parallel processes write the same files -------------------------

def _file_contents(root):
    """{relative path: content} of every file under root; .gz and the .npz members decompressed, so the
    gzip and zip headers' timestamps do not count."""
    import gzip
    import zipfile

    out = {}
    for p in sorted(root.rglob("*")):
        if p.suffix == ".npz":
            with zipfile.ZipFile(p) as z:
                out[str(p.relative_to(root))] = {n: z.read(n) for n in z.namelist()}
        elif p.suffix == ".gz":
            out[str(p.relative_to(root))] = gzip.decompress(p.read_bytes())
        elif p.is_file():
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_write_demo_cohort_with_parallel_simulations_writes_the_serial_files(tmp_path):
    from deepwas.config import block_defaults

    cfg = block_defaults("demo", {"seed": 3, "chrom_length": 200_000, "n_individuals": 600, "ld_block_length": 100_000,
                                  "genotypes": True})
    ld = block_defaults("ld", {"source": "demo", "window_length": 100_000, "window_stride": 50_000})
    chroms = ["1", "2", "3"]
    serial = simulate.simulate_cohort(cfg, chroms, threads=1)
    forked = simulate.simulate_cohort(cfg, chroms, threads=2)
    assert [c.chrom for c in forked] == chroms
    for s, f in zip(serial, forked):
        np.testing.assert_array_equal(f.positions, s.positions)
        np.testing.assert_array_equal(f.genotypes, s.genotypes)
        np.testing.assert_array_equal(f.allele1, s.allele1)
        np.testing.assert_array_equal(f.moments()[1], s.moments()[1])
    # each chromosome has its own seed: the three differ
    assert len({c.genotypes[:, :50].tobytes() for c in serial}) == 3

    for threads in (1, 2):
        simulate.write_demo_cohort(cfg, ld, chroms, str(tmp_path / f"t{threads}"), threads=threads)
    one, two = _file_contents(tmp_path / "t1"), _file_contents(tmp_path / "t2")
    assert len(one) == 3 * 3 * 2 + 3 + 2 + 2 + 2    # LD windows (.npz, .gz), genotypes, truth, sumstats, tables
    assert sorted(two) == sorted(one)
    for name in one:
        assert two[name] == one[name], name
