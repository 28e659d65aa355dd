# Genomic features (paper App. A.1, C_func): bigWig tracks -> GRCh38 track store -> exact normalisation
# statistics. The demo writes synthetic bigWigs and a GRCh37 -> GRCh38 chain (rule demo_tracks in demo.smk);
# real runs point config["features"]["track_manifest"] (TSV: name, path, in the fixed manifest order) at
# downloaded bigWigs.


rule build_track_store:
    input:
        manifest=track_manifest(),
        sizes=grch38_sizes(),
    output:
        store=directory("results/features/store"),
    log:
        "logs/features/build_track_store.log",
    benchmark:
        "benchmarks_runs/features/build_track_store.tsv"
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        dtype=config["features"]["track_dtype"],
        eclip_prefix=config["features"]["eclip_prefix"],
    script:
        "../scripts/build_track_store.py"


rule feature_norm:
    input:
        store="results/features/store",
    output:
        stats="results/features/normalisation.json",
    log:
        "logs/features/feature_norm.log",
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        chromosomes=TRAIN_CHROMS,
    script:
        "../scripts/feature_norm.py"


# dbNSFP coding scores (App. D.2): six per LD variant, streamed from the user's archive one GRCh38 chromosome
# file at a time; the table is the annotation table of the paper run (features.annotations in config/ukbb.yaml).


rule dbnsfp_scores:
    input:
        archive="resources/dbnsfp/dbNSFP.zip",
        variants="results/liftover/chr{chrom}.tsv.gz",
    output:
        table="results/features/dbnsfp/chr{chrom}.tsv.gz",
        report="results/features/dbnsfp/chr{chrom}.report.json",
    log:
        "logs/features/dbnsfp/chr{chrom}.log",
    benchmark:
        "benchmarks_runs/features/dbnsfp/chr{chrom}.tsv"
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    params:
        match=config["features"]["dbnsfp"]["match"],
        indicator=config["features"]["dbnsfp"]["indicator"],
        # chunk_rows is read from the config by the script: it changes no output, so it is no rerun trigger
    script:
        "../scripts/dbnsfp_features.py"


rule dbnsfp_table:
    input:
        tables=expand("results/features/dbnsfp/chr{chrom}.tsv.gz", chrom=CHROMS),
        reports=expand("results/features/dbnsfp/chr{chrom}.report.json", chrom=CHROMS),
    output:
        table="results/features/dbnsfp.tsv.gz",
        report="results/features/dbnsfp.report.json",
    log:
        "logs/features/dbnsfp/table.log",
    conda:
        "../../envs/deepwas.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
    script:
        "../scripts/dbnsfp_features.py"
