# Ablations (paper Fig. 6, Table 1, App. A.3): each run of `ablations.runs` retrains the ablated priors with
# its config overrides (track window, excluded tracks, network size) by the train and evaluate scripts of
# the full model, and is scored on the same held-out chromosomes. Target `ablations`.


wildcard_constraints:
    ablation="[A-Za-z0-9_]+",


rule train_ablation:
    input:
        unpack(lambda wc: {**chrom_inputs(TRAIN_CHROMS, wc.trait), **track_inputs(TRAIN_CHROMS)}),
        s2="results/stats/{trait}/s2.json",
    output:
        model="results/ablations/{ablation}/train/{trait}/{model}/{objective}/model.pt",
        metrics="results/ablations/{ablation}/train/{trait}/{model}/{objective}/metrics.tsv",
    params:
        model="{model}",
        objective="{objective}",
        annotations=lambda wc: ablation_config(wc.ablation)["features"].get("annotations"),
        tracks=lambda wc: ablation_track_params(wc.ablation, TRAIN_CHROMS),
        prior=lambda wc: ablation_config(wc.ablation)["prior"],
        network=lambda wc: ablation_config(wc.ablation).get("network", {}),
        train=lambda wc: ablation_config(wc.ablation)["train"],
        likelihood=lambda wc: ablation_config(wc.ablation)["likelihood"],
        checkpoint_dir="results/checkpoints/ablations/{ablation}/{trait}/{model}/{objective}",
    log:
        "logs/ablations/{ablation}/train/{trait}/{model}/{objective}.log",
    benchmark:
        "benchmarks_runs/ablations/{ablation}/{trait}/{model}/{objective}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=lambda wc: 1 if wc.model == "transformer" else 0,
    conda:
        "../../envs/deepwas.yaml"
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
    params:
        annotations=lambda wc: ablation_config(wc.ablation)["features"].get("annotations"),
        tracks=lambda wc: ablation_track_params(wc.ablation, HELDOUT),
    log:
        "logs/ablations/{ablation}/evaluate/{trait}/{model}/{objective}.log",
    conda:
        "../../envs/deepwas.yaml"
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
