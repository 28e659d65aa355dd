# GRCh37 -> GRCh38 positions of the LD variants, for the track features (windows and cores stay GRCh37).


rule liftover_ld_variants:
    """GRCh37 -> GRCh38 positions of one chromosome's LD variants (features only; windows stay GRCh37)."""
    input:
        variants=lambda wc: ld_window_inputs(wc.chrom, exts=("gz",)),
        chain=dl_chain_file(),
    output:
        table="results/liftover/chr{chrom}.tsv.gz",
        report="results/liftover/chr{chrom}.report.json",
    log:
        "logs/liftover/chr{chrom}.log",
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        variants=lambda wc: [f"{p}.gz" for p in window_prefixes(wc.chrom)],
    script:
        "../scripts/liftover.py"
