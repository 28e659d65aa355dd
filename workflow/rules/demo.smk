# The embedded offline demo: an msprime cohort written in the public UKBB formats.


rule demo_cohort:
    input:
        unpack(demo_track_inputs),
    output:
        ld=[f"resources/demo/ld/{w}.{ext}" for c in CHROMS for w in windows(c) for ext in ("npz", "gz")],
        sumstats=[f"resources/demo/sumstats/{t}.sumstats.gz" for t in config["demo"]["traits"]],
        truth=[f"resources/demo/truth/{t}.tsv.gz" for t in config["demo"]["traits"]],
        genotypes=[f"resources/demo/genotypes/chr{c}.npz" for c in CHROMS],
        annotations="resources/demo/annotations.tsv.gz",
        phenotypes=[] if config["demo"]["n_gwas"] else "resources/demo/phenotypes.tsv",
    params:
        demo=config["demo"],
        track_truth=demo_track_truth(),
        ld=config["ld"],
        chromosomes=CHROMS,
        outdir="resources/demo",
    log:
        "logs/demo/demo_cohort.log",
    benchmark:
        "benchmarks_runs/demo_cohort.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/demo_cohort.py"
