# Exact held-out likelihood of every trained prior (and of the demo's true f), then one summary table.


rule evaluate:
    input:
        unpack(lambda wc: {**chrom_inputs(HELDOUT, wc.trait), **track_inputs(HELDOUT)}),
        s2="results/stats/{trait}/s2.json",
        model="results/train/{trait}/{model}/{objective}/model.pt",
    output:
        table=report(
            "results/evaluation/{trait}/{model}/{objective}.tsv",
            caption="../report/windows.rst",
            category="Tables",
            subcategory="Per-window held-out likelihood",
            labels={"trait": "{trait}", "model": "{model}", "objective": "{objective}"},
        ),
        summary="results/evaluation/{trait}/{model}/{objective}.json",
    log:
        "logs/evaluate/{trait}/{model}/{objective}.log",
    conda:
        lambda wc: torch_env(wc, "inference")
    threads: config["threads"]["inference"]
    resources:
        **gpu_partition(lambda wc: gpu_for(wc, "inference")),
        gpu=lambda wc: gpu_for(wc, "inference"),
    params:
        annotations=config["features"]["annotations"],
        tracks=track_params(HELDOUT),
    script:
        "../scripts/evaluate_prior.py"


rule evaluate_oracle:
    input:
        unpack(lambda wc: chrom_inputs(HELDOUT, wc.trait)),
        s2="results/stats/{trait}/s2.json",
        truth=demo_truth,
    output:
        table="results/evaluation/{trait}/oracle/truth.tsv",
        summary="results/evaluation/{trait}/oracle/truth.json",
    log:
        "logs/evaluate/{trait}/oracle.log",
    conda:
        "../../envs/deepwas.yaml"
    params:
        annotations=None,
    script:
        "../scripts/evaluate_prior.py"


rule summary:
    input:
        evaluated(),
    output:
        tsv=report(
            "results/evaluation/summary.tsv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "held-out summary"},
        ),
        txt="results/summary.txt",
    log:
        "logs/summary.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/summarise_results.py"
