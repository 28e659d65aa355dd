# Semi-synthetic recovery experiment (paper Sec. 6.1, App. A.5, B.1): a known prior f, statistics
# simulated through the real LD factors, every model x objective trained on the training chromosomes and
# scored by the RMSE of log f on the held-out ones. Not part of `all`: run `snakemake --cores 2 simulation`.
# Every key of the `simulation:` block is optional (defaults in the schema).


rule simulate_semisynthetic:
    input:
        factors=expand("results/ld_factors/chr{chrom}", chrom=CHROMS),
        manifests=expand("results/ld_factors/chr{chrom}.manifest.tsv", chrom=CHROMS),
        store="results/features/store",
        normalisation="results/features/normalisation.json",
        liftover=expand("results/liftover/chr{chrom}.tsv.gz", chrom=CHROMS),
    output:
        rmse="results/simulation/{truth}/rmse.tsv",
        details="results/simulation/{truth}/details.json",
    log:
        "logs/simulation/{truth}.log",
    benchmark:
        "benchmarks_runs/simulation/{truth}.tsv"
    wildcard_constraints:
        truth="network|threshold",
    conda:
        "../../envs/deepwas.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    params:
        chromosomes=CHROMS,
        heldout=HELDOUT,
        simulation=config["simulation"],
        track_window=config["features"]["track_window"],
        network=config["network"],
        alpha=config["prior"]["alpha"],
        train=config["train"],
        # checkpoints and training metrics: not declared outputs, so a failed job keeps them for the rerun
        checkpoint_root="results/checkpoints/simulation/{truth}",
    script:
        "../scripts/simulate_semisynthetic.py"


rule plot_simulation:
    input:
        expand("results/simulation/{truth}/rmse.tsv", truth=simulation_truths()),
    output:
        report(
            "results/figures/simulation_rmse.png",
            caption="../report/fig4.rst",
            category="Figures",
            labels={"figure": "Figs. 4 and 7", "content": "semi-synthetic RMSE"},
        ),
    log:
        "logs/figures/simulation_rmse.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/plot_simulation.py"


rule simulation:
    """Target: the semi-synthetic RMSE tables of every truth and their figure."""
    input:
        expand("results/simulation/{truth}/rmse.tsv", truth=simulation_truths()),
        "results/figures/simulation_rmse.png",
    localrule: True
