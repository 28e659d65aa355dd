# LD windows from the user's own PLINK 1 panel (`ld.source: plink`, `ld.plink: prefix`): one job per
# chromosome writes that chromosome's windows in the UKBB layout into a directory the workflow owns
# (resources/plink_ld/chr{c}/, with panel.json: the panel size), never next to the user's files. The window
# list is known when the DAG is built (common.smk: plink_windows reads the .bim).


rule plink_ld_windows:
    input:
        unpack(plink_inputs),
    output:
        windows=directory("resources/plink_ld/chr{chrom}"),
        report="resources/plink_ld/chr{chrom}.report.json",
    log:
        "logs/plink_ld_windows/chr{chrom}.log",
    benchmark:
        "benchmarks_runs/plink_ld_windows/chr{chrom}.tsv"
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=plink_mem_mb,
    params:
        prefix=lambda wc: plink_prefix(),
        length=config["ld"]["window_length"],
        stride=config["ld"]["window_stride"],
        expected=lambda wc: plink_windows(wc.chrom),
    script:
        "../scripts/plink_ld_windows.py"
