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
