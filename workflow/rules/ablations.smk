# Ablations (paper Fig. 6, Table 1, App. A.3): each run of `ablations.runs` retrains the ablated priors with
# its config overrides (reduced (i)+ windows, track window, excluded tracks, network size) by the train and
# evaluate scripts of the full model, and is scored on the same held-out chromosomes (standard windows).
# Target `ablations`.


wildcard_constraints:
    ablation="[A-Za-z0-9_]+",


rule ld_factors_ablation:
    """Reduced (i)+ (App. A.3): the training chromosomes' LD factors on random runs of variants (ablations.runs.{ablation}.reduced_windows)."""
    input:
        windows=lambda wc: ld_window_inputs(wc.chrom),
        cores="results/windows/cores.tsv",
        reference_frequencies=lambda wc: config["harmonise"]["reference_frequencies"] or [],
    output:
        factors=directory("results/ablations/{ablation}/ld_factors/chr{chrom}"),
        manifest="results/ablations/{ablation}/ld_factors/chr{chrom}.manifest.tsv",
    log:
        "logs/ablations/{ablation}/ld_factors/chr{chrom}.log",
    benchmark:
        "benchmarks_runs/ablations/{ablation}/ld_factors/chr{chrom}.tsv"
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
        reduced=lambda wc: ablation_reduced_windows(wc.ablation),
    script:
        "../scripts/ld_factors.py"


rule whiten_ablation:
    input:
        harmonised="results/harmonised/{trait}.tsv.gz",
        factors="results/ablations/{ablation}/ld_factors/chr{chrom}",
        manifest="results/ablations/{ablation}/ld_factors/chr{chrom}.manifest.tsv",
    output:
        stats="results/ablations/{ablation}/stats/{trait}/chr{chrom}.npz",
        manifest="results/ablations/{ablation}/stats/{trait}/chr{chrom}.manifest.tsv",
        report="results/ablations/{ablation}/stats/{trait}/chr{chrom}.whiten.json",
    log:
        "logs/ablations/{ablation}/whiten/{trait}/chr{chrom}.log",
    conda:
        "../../envs/deepwas.yaml"
    params:
        rtol=config["ld"]["eig_rtol"],
    script:
        "../scripts/whiten.py"


rule train_ablation:
    input:
        unpack(lambda wc: {**ablation_chrom_inputs(wc.ablation, TRAIN_CHROMS, wc.trait), **track_inputs(TRAIN_CHROMS)}),
        s2="results/stats/{trait}/s2.json",
    output:
        model="results/ablations/{ablation}/train/{trait}/{model}/{objective}/model.pt",
        metrics="results/ablations/{ablation}/train/{trait}/{model}/{objective}/metrics.tsv",
    log:
        "logs/ablations/{ablation}/train/{trait}/{model}/{objective}.log",
    benchmark:
        "benchmarks_runs/ablations/{ablation}/{trait}/{model}/{objective}.tsv"
    conda:
        torch_env
    threads: 1
    resources:
        **gpu_partition(gpu_for),
        mem_mb=8000,
        gpu=gpu_for,
    params:
        model="{model}",
        objective="{objective}",
        annotations=lambda wc: ablation_config(wc.ablation)["features"]["annotations"],
        tracks=lambda wc: ablation_track_params(wc.ablation, TRAIN_CHROMS),
        prior=lambda wc: ablation_config(wc.ablation)["prior"],
        network=lambda wc: ablation_config(wc.ablation)["network"],
        train=lambda wc: ablation_config(wc.ablation)["train"],
        likelihood=lambda wc: ablation_config(wc.ablation)["likelihood"],
        checkpoint_dir="results/checkpoints/ablations/{ablation}/{trait}/{model}/{objective}",
    script:
        "../scripts/train_prior.py"


rule evaluate_ablation:
    input:
        unpack(lambda wc: {**chrom_inputs(HELDOUT, wc.trait), **track_inputs(HELDOUT)}),
        s2="results/stats/{trait}/s2.json",
        model="results/ablations/{ablation}/train/{trait}/{model}/{objective}/model.pt",
    output:
        table="results/ablations/{ablation}/evaluation/{trait}/{model}/{objective}.tsv",
        summary="results/ablations/{ablation}/evaluation/{trait}/{model}/{objective}.json",
    log:
        "logs/ablations/{ablation}/evaluate/{trait}/{model}/{objective}.log",
    conda:
        "../../envs/deepwas.yaml"
    params:
        annotations=lambda wc: ablation_config(wc.ablation)["features"]["annotations"],
        tracks=lambda wc: ablation_track_params(wc.ablation, HELDOUT),
    script:
        "../scripts/evaluate_prior.py"


rule ablations:
    """Target: every ablation trained and scored, Table 1 (TSV and Markdown) and Fig. 6."""
    input:
        lambda wc: ablation_evaluated(),
        "results/ablations/table1.tsv",
        "results/ablations/table1.md",
        "results/figures/fig6_ablations.png",
    localrule: True
