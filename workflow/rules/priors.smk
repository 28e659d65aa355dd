# Outputs of trained priors: per-variant prior files in PolyFun's layout (each chromosome scored by a model not
# trained on it), h2 and enrichment with block-jackknife standard errors, and priors applied to other variant sets.
# The transformer's jobs get one GPU for its forward (gpu_for(..., "inference") in common.smk).

from types import SimpleNamespace


wildcard_constraints:
    fold="[0-9]+",


rule train_fold:
    input:
        unpack(lambda wc: {**chrom_inputs(fold_chroms(wc.fold), wc.trait), **track_inputs(fold_chroms(wc.fold))}),
        s2="results/stats/{trait}/s2.json",
    output:
        model="results/train_folds/{trait}/{model}/{objective}/fold{fold}/model.pt",
        metrics="results/train_folds/{trait}/{model}/{objective}/fold{fold}/metrics.tsv",
    log:
        "logs/train_folds/{trait}/{model}/{objective}/fold{fold}.log",
    benchmark:
        "benchmarks_runs/train_folds/{trait}/{model}/{objective}/fold{fold}.tsv"
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
        annotations=config["features"]["annotations"],
        tracks=lambda wc: track_params(fold_chroms(wc.fold)),
        prior=config["prior"],
        network=config["network"],
        train=config["train"],
        likelihood=config["likelihood"],
        checkpoint_dir="results/checkpoints_folds/{trait}/{model}/{objective}/fold{fold}",
    script:
        "../scripts/train_prior.py"


rule export_priors:
    input:
        unpack(lambda wc: track_inputs(list(prior_plan()))),
        factors=[f"results/ld_factors/chr{c}" for c in prior_plan()],
        manifests=[f"results/ld_factors/chr{c}.manifest.tsv" for c in prior_plan()],
        harmonised="results/harmonised/{trait}.tsv.gz",
        models=lambda wc: sorted({scoring_model(wc.trait, wc.model, wc.objective, l) for l in prior_plan().values()}),
    output:
        **prior_files("results/priors/{trait}/{model}/{objective}", prior_plan()),
        summary=report(
            "results/priors/{trait}/{model}/{objective}/summary.json",
            caption="../report/priors_summary.rst",
            category="Tables",
            subcategory="Priors",
            labels={"trait": "{trait}", "model": "{model}", "objective": "{objective}"},
        ),
    log:
        "logs/priors/{trait}/{model}/{objective}.log",
    priority: 20
    conda:
        lambda wc: torch_env(wc, "inference")
    threads: config["threads"]["inference"]
    resources:
        **gpu_partition(lambda wc: gpu_for(wc, "inference")),
        mem_mb=8000,
        gpu=lambda wc: gpu_for(wc, "inference"),
    params:
        plan=prior_plan(),
        models=lambda wc: {
            l: scoring_model(wc.trait, wc.model, wc.objective, l) for l in sorted(set(prior_plan().values()))
        },
        annotations=config["features"]["annotations"],
        tracks=track_params(list(prior_plan())),
    script:
        "../scripts/export_priors.py"


rule prior_h2:
    input:
        unpack(lambda wc: {**chrom_inputs(TRAIN_CHROMS, wc.trait), **track_inputs(CHROMS)}),
        all_factors=[f"results/ld_factors/chr{c}" for c in CHROMS],
        all_manifests=[f"results/ld_factors/chr{c}.manifest.tsv" for c in CHROMS],
        harmonised="results/harmonised/{trait}.tsv.gz",
        s2="results/stats/{trait}/s2.json",
        model="results/train/{trait}/{model}/{objective}/model.pt",
        priors="results/priors/{trait}/{model}/{objective}/summary.json",
    output:
        report(
            "results/h2/{trait}/{model}/{objective}.tsv",
            caption="../report/h2.rst",
            category="Tables",
            subcategory="h2 and enrichment",
            labels={"trait": "{trait}", "model": "{model}", "objective": "{objective}"},
        ),
    log:
        "logs/h2/{trait}/{model}/{objective}.log",
    priority: 20
    conda:
        lambda wc: torch_env(wc, "inference")
    threads: 1
    resources:
        **gpu_partition(lambda wc: gpu_for(wc, "inference")),
        mem_mb=8000,
        gpu=lambda wc: gpu_for(wc, "inference"),
    params:
        annotations=config["features"]["annotations"],
        tracks=track_params(CHROMS),
        blocks=priors_cfg("jackknife_blocks"),
        method=priors_cfg("jackknife_method"),
    script:
        "../scripts/prior_h2.py"


for _name, _a in priors_cfg("apply").items():
    _chroms = applied_chroms(_a)
    _factors = _a.get("factors", "results/ld_factors")
    # the model named 'trait/model/objective' (a .pt path: possibly the transformer, so a GPU unless device cpu)
    _kind = SimpleNamespace(model="transformer" if _a["model"].endswith(".pt") else _a["model"].split("/")[1])
    _gpus = gpu_for(_kind, "inference")

    rule:
        name:
            f"apply_prior_{_name}"
        input:
            **track_inputs(_chroms),
            factors=[f"{_factors}/chr{c}" for c in _chroms],
            manifests=[f"{_factors}/chr{c}.manifest.tsv" for c in _chroms],
            harmonised=_a["harmonised"],
            models=[applied_model(_a)],
        output:
            **prior_files(f"results/priors_applied/{_name}", _chroms),
            summary=f"results/priors_applied/{_name}/summary.json",
        log:
            f"logs/priors_applied/{_name}.log",
        conda:
            torch_env(_kind, "inference")
        threads: 1
        resources:
            **gpu_partition(_gpus),
            mem_mb=8000,
            gpu=_gpus,
        params:
            plan={c: _a["model"] for c in _chroms},
            models={_a["model"]: applied_model(_a)},
            annotations=config["features"]["annotations"],
            tracks=track_params(_chroms),
        script:
            "../scripts/export_priors.py"
