# The paper's figures (Figs. 2-7) and Table 1, each drawn from result tables only: a changed plot never
# retrains. Target `figures`; every figure goes into `snakemake --report report.html` with its caption.
# `snakemake --report` reports the default target's DAG, so `all` includes these figures (figure_targets).
# The h2 / enrichment tables and the prior summaries go into the report from workflow/rules/priors.smk.


rule effective_config:
    """The effective config (results/config.yaml, written at parse time by common.smk: no rule makes it), checked
    against the schema and copied into the report."""
    input:
        "results/config.yaml",
    output:
        report("results/report/config.yaml", caption="../report/config.rst", category="Configuration"),
    log:
        "logs/figures/effective_config.log",
    localrule: True
    run:
        copy_effective_config(input[0], output[0])


rule plot_heldout:
    """Fig. 5: held-out likelihood gain per trait, model and objective."""
    input:
        "results/evaluation/summary.tsv",
    output:
        report(
            "results/figures/heldout_pct.png",
            caption="../report/fig5.rst",
            category="Figures",
            labels={"figure": "Fig. 5", "content": "held-out gain"},
        ),
    log:
        "logs/figures/heldout_pct.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/plot_heldout.py"


rule region_enrichment:
    """Fig. 3 table: per-variant f and f / E f of one trained prior along the figures.region chromosome."""
    input:
        unpack(lambda wc: {**chrom_inputs([fig3_choice()[3]], fig3_choice()[0]), **track_inputs([fig3_choice()[3]])}),
        model=lambda wc: "results/train/{0}/{1}/{2}/model.pt".format(*fig3_choice()[:3]),
    output:
        report(
            "results/figures/fig3_region.tsv",
            caption="../report/fig3_table.rst",
            category="Tables",
            labels={"table": "Fig. 3 region", "content": "per-variant f"},
        ),
    log:
        "logs/figures/fig3_region.log",
    benchmark:
        "benchmarks_runs/figures/fig3_region.tsv"
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=8000,
    params:
        choice=fig3_choice(),
        annotations=config["features"]["annotations"],
        tracks=track_params([fig3_choice()[3]]),
    script:
        "../scripts/region_enrichment.py"


rule plot_region:
    """Fig. 3: sqrt(f / E f) along the region, selected input tracks below."""
    input:
        "results/figures/fig3_region.tsv",
    output:
        report(
            "results/figures/fig3_region.png",
            caption="../report/fig3.rst",
            category="Figures",
            labels={"figure": "Fig. 3", "content": "enrichment along a region"},
        ),
    log:
        "logs/figures/fig3_plot.log",
    conda:
        "../../envs/deepwas.yaml"
    params:
        choice=fig3_choice(),
    script:
        "../scripts/plot_region.py"


rule ablation_table:
    """Table 1 and Fig. 6: held-out gain of each ablation against the full model."""
    input:
        full="results/evaluation/summary.tsv",
        ablations=lambda wc: ablation_evaluated(),
    output:
        tsv=report(
            "results/ablations/table1.tsv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1", "content": "ablations"},
        ),
        md="results/ablations/table1.md",
        png=report(
            "results/figures/fig6_ablations.png",
            caption="../report/fig6.rst",
            category="Figures",
            labels={"figure": "Fig. 6", "content": "ablations"},
        ),
    log:
        "logs/figures/ablations.log",
    conda:
        "../../envs/deepwas.yaml"
    params:
        names=lambda wc, input: [p.split("/")[2] for p in input.ablations],
    script:
        "../scripts/plot_ablations.py"


rule figures:
    """Target: every figure whose tables exist or come from the main run (Figs. 4/7 and 6 after
    `snakemake simulation` / `snakemake ablations`)."""
    input:
        lambda wc: figure_targets(notes=True),
    localrule: True
