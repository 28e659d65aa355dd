# Fig. 2 analogue (paper Sec. 4.2, Fig. 2): drawn from the TSV that benchmarks/fig2.py writes
# (run by hand: `python benchmarks/fig2.py`; it times the machine, so it is not a rule).


rule fig2:
    input:
        fig2_table(),
    output:
        report(
            "results/figures/fig2.png",
            caption="../report/fig2.rst",
            category="Figures",
            labels={"figure": "Fig. 2", "content": "time per loss and gradient"},
        ),
    log:
        "logs/figures/fig2.log",
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/plot_fig2.py"
