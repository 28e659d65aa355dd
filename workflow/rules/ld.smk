# LD-only precomputation once per window (grouped per chromosome), then the per-trait whitened statistics.


rule ld_factors:
    input:
        windows=lambda wc: ld_window_inputs(wc.chrom),
        harmonised=expand("results/harmonised/{trait}.tsv.gz", trait=traits()),
    output:
        factors=directory("results/ld_factors/chr{chrom}"),
        manifest=report("results/ld_factors/chr{chrom}.manifest.tsv", caption="../report/ld_manifest.rst",
                        category="Checks", subcategory="LD factors", labels={"chromosome": "{chrom}"}),
    params:
        prefixes=lambda wc: window_prefixes(wc.chrom),
        length=config["ld"]["window_length"],
        stride=config["ld"]["window_stride"],
        rtol=config["ld"]["eig_rtol"],
        diag_atol=config["ld"]["diag_atol"],
        max_clip=config["ld"]["psd_max_clip"],
        factor_dtype=config["ld"]["factor_dtype"],
        panel_size=config["demo"]["n_individuals"] if config["ld"]["source"] == "demo" else config["ld"]["panel_size"],
    log:
        "logs/ld_factors/chr{chrom}.log",
    benchmark:
        "benchmarks_runs/ld_factors/chr{chrom}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/ld_factors.py"


rule whiten:
    input:
        harmonised="results/harmonised/{trait}.tsv.gz",
        factors="results/ld_factors/chr{chrom}",
        manifest="results/ld_factors/chr{chrom}.manifest.tsv",
    output:
        "results/stats/{trait}/chr{chrom}.npz",
    log:
        "logs/whiten/{trait}/chr{chrom}.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/whiten.py"


rule estimate_s2:
    input:
        factors=expand("results/ld_factors/chr{chrom}", chrom=TRAIN_CHROMS),
        manifests_train=expand("results/ld_factors/chr{chrom}.manifest.tsv", chrom=TRAIN_CHROMS),
        stats=lambda wc: expand("results/stats/{trait}/chr{chrom}.npz", trait=wc.trait, chrom=TRAIN_CHROMS),
        manifests=expand("results/ld_factors/chr{chrom}.manifest.tsv", chrom=CHROMS),
    output:
        "results/stats/{trait}/s2.json",
    params:
        s2=lambda wc: trait_value(wc.trait, "s2"),
        alpha=config["prior"]["alpha"],
        s2_check=config["s2"],
    log:
        "logs/estimate_s2/{trait}.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/estimate_s2.py"
