# Figures people would rather look at than read.


rule plot_heldout:
    input:
        "results/evaluation/summary.tsv",
    output:
        "results/figures/heldout_pct.png",
    log:
        "logs/figures/heldout_pct.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/plot_heldout.py"
