# The embedded offline demo: synthetic tracks and chain, and an msprime cohort written in the public UKBB formats.


rule demo_tracks:
    output:
        manifest="resources/demo/tracks/manifest.tsv",
        sizes="resources/demo/tracks/chrom_sizes_grch38.tsv",
        chain="resources/demo/chain/hg19ToHg38.demo.over.chain.gz",
    log:
        "logs/features/demo_tracks.log",
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        chromosomes=CHROMS,
        chrom_length=config["demo"]["chrom_length"],
        seed=config["demo"]["seed"],
        n_tracks=config["features"]["demo_n_tracks"],
        n_eclip=config["features"]["demo_n_eclip"],
        outdir=lambda wc, output: str(Path(output.manifest).parent),
    script:
        "../scripts/demo_tracks.py"


rule demo_cohort:
    input:
        unpack(demo_track_inputs),
    output:
        ld=[f"resources/demo/ld/{w}.{ext}" for c in CHROMS for w in windows(c) for ext in ("npz", "gz")],
        sumstats=[f"resources/demo/sumstats/{t}.sumstats.gz" for t in config["demo"]["traits"]],
        truth=[f"resources/demo/truth/{t}.tsv.gz" for t in config["demo"]["traits"]],
        genotypes=[f"resources/demo/genotypes/chr{c}.npz" for c in CHROMS] if config["demo"]["genotypes"] else [],
        annotations="resources/demo/annotations.tsv.gz",
        phenotypes=[] if config["demo"]["n_gwas"] else "resources/demo/phenotypes.tsv",
    log:
        "logs/demo/demo_cohort.log",
    benchmark:
        "benchmarks_runs/demo_cohort.tsv"
    conda:
        "../../envs/deepwas.yaml"
    # the chromosomes' simulations run in parallel processes; Snakemake sets the BLAS threads to these, and the
    # LD windows' and the GWAS's rounding follows them: 2, as the workflow profile, gives the recorded demo files
    threads: 2
    resources:
        mem_mb=6000,
    params:
        demo=config["demo"],
        track_truth=demo_track_truth(),
        ld=config["ld"],
        chromosomes=CHROMS,
        outdir=lambda wc, output: str(Path(output.annotations).parent),
    script:
        "../scripts/demo_cohort.py"
