# Train each prior (model x objective) on the training chromosomes of each trait. Priorities order the ready
# jobs: export_priors and prior_h2 (20: a jackknife can be the longest job, so it starts as soon as its prior
# is trained), the constant and GLM trainings (15: seconds each, and they unlock the jackknifes), then the
# chain to training (harmonise, whiten, estimate_s2, the transformer's training: 10), then the rest
# (evaluation, figures). On the demo's 2 cores this keeps a late jackknife from becoming the run's tail: with
# every training at 10 the LDSR-trained GLM's jackknife (about 150 s) started after all four transformer
# trainings and ran alone for the last 100 s (10:16 wall on 2 idle cores).


rule train:
    input:
        unpack(lambda wc: {**chrom_inputs(TRAIN_CHROMS, wc.trait), **track_inputs(TRAIN_CHROMS)}),
        s2="results/stats/{trait}/s2.json",
    output:
        model="results/train/{trait}/{model}/{objective}/model.pt",
        metrics="results/train/{trait}/{model}/{objective}/metrics.tsv",
    log:
        "logs/train/{trait}/{model}/{objective}.log",
    benchmark:
        "benchmarks_runs/train/{trait}/{model}/{objective}.tsv"
    priority: lambda wc: 10 if wc.model == "transformer" else 15
    conda:
        torch_env
    threads: config["threads"]["train"]
    resources:
        **gpu_partition(gpu_for),
        mem_mb=8000,
        gpu=gpu_for,
    params:
        model="{model}",
        objective="{objective}",
        annotations=config["features"]["annotations"],
        tracks=track_params(TRAIN_CHROMS),
        prior=config["prior"],
        network=config["network"],
        train=config["train"],
        likelihood=config["likelihood"],
        # checkpoints are deliberately not a declared output: a failed job keeps them for the rerun; the script
        # keys them by a hash of the training inputs (subfolder), so changed data never resumes an old run
        checkpoint_dir="results/checkpoints/{trait}/{model}/{objective}",
    script:
        "../scripts/train_prior.py"
