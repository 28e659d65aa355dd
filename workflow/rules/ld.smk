# LD-only precomputation once per window (grouped per chromosome; it depends on the LD source alone, so adding a
# trait reruns nothing here), then the per-trait whitened statistics (each trait's restriction to its variants).

LD_FACTORS_MIN_PER_WINDOW = 2  # runtime budget per UKBB window (minutes), from benchmarks/scale.py


rule window_table:
    input:
        **({"manifest": ld_manifest()} if ld_manifest() else {}),
    output:
        "results/windows/cores.tsv",
    log:
        "logs/window_table.log",
    conda:
        "../../envs/deepwas.yaml"
    params:
        windows=[] if ld_manifest() else [w for c in CHROMS for w in windows(c)],
        length=config["ld"]["window_length"],
        stride=config["ld"]["window_stride"],
        regions=config["ld"]["long_range_regions"],
    script:
        "../scripts/window_table.py"


# Resources from benchmarks/scale.py (benchmarks/RESULTS.md): one window of m = 13,900 extended and n = 4,700
# core variants takes 32 CPU-s (float32 file) to 36 CPU-s (float64) on one thread and peaks at 2.3 / 3.0 GB;
# the largest UKBB windows (m = 20,000, n = 7,000) cost about 3-5x that. The rule also holds the factors of
# one or two pending windows (estimated 8 GB in all for the largest, 10 GB for float64 files). Memory and
# runtime grow with the attempt (snakemake --retries N).
rule ld_factors:
    input:
        windows=lambda wc: ld_window_inputs(wc.chrom),
        cores="results/windows/cores.tsv",
        reference_frequencies=lambda wc: config["harmonise"]["reference_frequencies"] or [],
    output:
        factors=directory("results/ld_factors/chr{chrom}"),
        manifest=report(
            "results/ld_factors/chr{chrom}.manifest.tsv",
            caption="../report/ld_manifest.rst",
            category="Checks",
            subcategory="LD factors",
            labels={"chromosome": "{chrom}"},
        ),
    log:
        "logs/ld_factors/chr{chrom}.log",
    benchmark:
        "benchmarks_runs/ld_factors/chr{chrom}.tsv"
    conda:
        "../../envs/deepwas.yaml"
    threads: config["ld"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: (1000 if config["ld"]["source"] == "demo" else 10000) * attempt,
        runtime=lambda wc, attempt: (
            10 if config["ld"]["source"] == "demo" else LD_FACTORS_MIN_PER_WINDOW * len(windows(wc.chrom))
        )
        * attempt,
    params:
        prefixes=lambda wc: window_prefixes(wc.chrom),
        rtol=config["ld"]["eig_rtol"],
        diag_atol=config["ld"]["diag_atol"],
        max_clip=config["ld"]["psd_max_clip"],
        max_clipped_mass=config["ld"]["psd_max_clipped_mass"],
        max_abs_change=config["ld"]["psd_max_abs_change"],
        regions=config["ld"]["long_range_regions"],
        factor_dtype=config["ld"]["factor_dtype"],
        compute_dtype=config["ld"]["compute_dtype"],
        panel_size=lambda wc: ld_panel_size(wc.chrom),
    script:
        "../scripts/ld_factors.py"


rule whiten:
    input:
        harmonised="results/harmonised/{trait}.tsv.gz",
        factors="results/ld_factors/chr{chrom}",
        manifest="results/ld_factors/chr{chrom}.manifest.tsv",
    output:
        stats="results/stats/{trait}/chr{chrom}.npz",
        manifest="results/stats/{trait}/chr{chrom}.manifest.tsv",
        report="results/stats/{trait}/chr{chrom}.whiten.json",
    log:
        "logs/whiten/{trait}/chr{chrom}.log",
    priority: 10
    conda:
        "../../envs/deepwas.yaml"
    params:
        rtol=config["ld"]["eig_rtol"],
    script:
        "../scripts/whiten.py"


rule estimate_s2:
    input:
        factors=expand("results/ld_factors/chr{chrom}", chrom=TRAIN_CHROMS),
        manifests_train=expand("results/ld_factors/chr{chrom}.manifest.tsv", chrom=TRAIN_CHROMS),
        stats=lambda wc: expand("results/stats/{trait}/chr{chrom}.npz", trait=wc.trait, chrom=TRAIN_CHROMS),
        manifests=lambda wc: expand("results/stats/{trait}/chr{chrom}.manifest.tsv", trait=wc.trait, chrom=CHROMS),
    output:
        "results/stats/{trait}/s2.json",
    log:
        "logs/estimate_s2/{trait}.log",
    priority: 10
    conda:
        "../../envs/deepwas.yaml"
    threads: config["threads"]["s2"]
    params:
        s2=lambda wc: trait_value(wc.trait, "s2"),
        alpha=config["prior"]["alpha"],
        s2_check=config["s2"],
        mismatch=config["likelihood"]["mismatch"],
        panel_size=mismatch_panel_size(),
    script:
        "../scripts/estimate_s2.py"
