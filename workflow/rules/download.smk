# Downloads (issue 4): UKBB LD windows (public S3, unsigned), UKBB_409K summary statistics (requester-pays
# GCS), conservation / FANTOM5 / ENCODE bigWigs and the hg19ToHg38 chain (HTTP), dbNSFP (a local archive),
# and the GRCh37 -> GRCh38 liftover of the LD variants. Every download resumes, verifies, writes under a
# temporary name and records a lock entry (resources/locks/); the per-group lock TSVs list files in the
# manifest order, which is the order training reads them in. All run on the submit host (localrule).
# Config: the `download:` block (see config/README.md); helpers are in common.smk's downloads block.

wildcard_constraints:
    window="chr[0-9]+_[0-9]+_[0-9]+",
    track="[A-Za-z0-9_.+-]+",
    source="ucsc|fantom|encode",


rule download_ukbb_ld_window:
    output:
        npz=f"{UKBB_LD_DIR}/{{window}}.npz",
        gz=f"{UKBB_LD_DIR}/{{window}}.gz",
        lock="resources/locks/ukbb_ld/{window}.json",
    params:
        bucket=dl_cfg("ld_bucket"),
        prefix=dl_cfg("ld_prefix"),
        endpoint=dl_cfg("s3_endpoint"),
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/ukbb_ld/{window}.log",
    localrule: True
    retries: 0
    script:
        "../scripts/download_ukbb_ld.py"


rule download_ukbb_ld_lock:
    """One lock TSV for the selected chromosomes plus the report of excluded (long-range / absent) windows."""
    input:
        locks=lambda wc: [f"resources/locks/ukbb_ld/{w}.json" for w in dl_ld_windows()],
    output:
        lock="resources/locks/ukbb_ld.lock.tsv",
        excluded="resources/ukbb/ld_excluded_windows.tsv",
    params:
        manifest=config["ld"]["manifest"],
        chromosomes=dl_ld_chromosomes(),
        order=lambda wc: [f"{w}.{ext}" for w in dl_ld_windows() for ext in ("npz", "gz")],
    log:
        "logs/download/ukbb_ld_lock.log",
    localrule: True
    script:
        "../scripts/download_lock.py"


rule check_ukbb_ld_manifest:
    """Lists the LD bucket ONCE (network) and writes a corrected manifest; not part of the default DAG."""
    output:
        "resources/ukbb_ld_windows.checked.tsv",
    params:
        manifest=config["ld"]["manifest"],
        bucket=dl_cfg("ld_bucket"),
        prefix=dl_cfg("ld_prefix"),
        endpoint=dl_cfg("s3_endpoint"),
    log:
        "logs/download/check_ukbb_ld_manifest.log",
    localrule: True
    script:
        "../scripts/download_ukbb_ld.py"


rule download_ukbb_sumstats:
    output:
        sumstats="resources/ukbb/sumstats/{trait}.sumstats.gz",
        lock="resources/locks/sumstats/{trait}.json",
    params:
        bucket=dl_cfg("sumstats_bucket"),
        prefix=dl_cfg("sumstats_prefix"),
        billing=dl_cfg("billing_project"),
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/sumstats/{trait}.log",
    localrule: True
    script:
        "../scripts/download_sumstats.py"


rule download_sumstats_url:
    """A trait-sheet row whose path is an http(s) URL: fetched to resources/sumstats/{trait}/ by name."""
    output:
        sumstats="resources/sumstats/{trait}/{filename}",
        lock="resources/locks/sumstats_url/{trait}/{filename}.json",
    params:
        url=lambda wc: TRAITS.loc[wc.trait, "path"],
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/sumstats_url/{trait}/{filename}.log",
    localrule: True
    script:
        "../scripts/download_http.py"


rule download_track_http:
    """UCSC conservation bigWigs, pinned by URL in config/manifests/ucsc_tracks.tsv."""
    output:
        bigwig="resources/tracks/{source}/{track}.bigWig",
        lock="resources/locks/tracks/{source}/{track}.json",
    wildcard_constraints:
        source="ucsc",
    params:
        url=lambda wc: dl_track_url(wc.source, wc.track),
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/tracks/{source}/{track}.log",
    localrule: True
    script:
        "../scripts/download_http.py"


rule fantom_datahub_index:
    """ONE listing of the FANTOM5 hg38 data-hub folder (download.fantom_base_url): href + decoded file name."""
    output:
        "resources/tracks/fantom/datahub_index.tsv",
    params:
        base_url=dl_cfg("fantom_base_url"),
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/fantom_index.log",
    localrule: True
    script:
        "../scripts/download_fantom.py"


rule download_track_fantom:
    """FANTOM5 hCAGE TPM bigWig of one tissue and strand: the pinned `file`, else the unique data-hub file
    named '{tissue}.CNhs<id>.*.{strand}.bw' (rule in deepwas.downloads.resolve_fantom_file); the resolved
    name is recorded in the lock so it can be pinned."""
    input:
        index="resources/tracks/fantom/datahub_index.tsv",
    output:
        bigwig="resources/tracks/fantom/{track}.bigWig",
        lock="resources/locks/tracks/fantom/{track}.json",
    params:
        row=lambda wc: dl_track_row("fantom", wc.track),
        base_url=dl_cfg("fantom_base_url"),
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/tracks/fantom/{track}.log",
    localrule: True
    script:
        "../scripts/download_http.py"


rule resolve_encode_experiment:
    """ENCODE REST metadata -> one GRCh38 bigWig (rule in deepwas/encode.py), md5 and size from metadata."""
    output:
        "resources/tracks/encode/{track}.resolved.json",
    params:
        accession=lambda wc: dl_encode_accession(wc.track),
        assay=lambda wc: dl_track_row("encode", wc.track).get("assay", ""),
        target=lambda wc: dl_track_row("encode", wc.track).get("target", ""),
        base_url=dl_cfg("encode_base_url"),
        allow_warnings=dl_cfg("encode_allow_warnings"),
    log:
        "logs/download/encode/{track}.resolve.log",
    localrule: True
    script:
        "../scripts/download_encode.py"


rule download_track_encode:
    input:
        resolved="resources/tracks/encode/{track}.resolved.json",
    output:
        bigwig="resources/tracks/encode/{track}.bigWig",
        lock="resources/locks/tracks/encode/{track}.json",
    params:
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/tracks/encode/{track}.log",
    localrule: True
    script:
        "../scripts/download_http.py"


rule download_tracks_lock:
    """The track lock (manifest order: UCSC, FANTOM fwd/rev, ENCODE) and the features' track manifest."""
    input:
        locks=dl_track_locks(),
        bigwigs=dl_track_files(),
    output:
        lock="resources/locks/tracks.lock.tsv",
        manifest="resources/tracks/manifest.tsv",
        sizes="resources/tracks/chrom_sizes_grch38.tsv",
    params:
        order=dl_track_names(),
    log:
        "logs/download/tracks_lock.log",
    localrule: True
    script:
        "../scripts/download_lock.py"


rule download_chain:
    output:
        chain="resources/chain/hg19ToHg38.over.chain.gz",
        lock="resources/locks/chain/hg19ToHg38.over.chain.gz.json",
    params:
        url=dl_cfg("chain_url"),
        retries=dl_cfg("retries"),
        backoff=dl_cfg("backoff_s"),
    log:
        "logs/download/chain.log",
    localrule: True
    script:
        "../scripts/download_http.py"


rule dbnsfp_archive:
    """dbNSFP is licence-gated: the user downloads it and names the archive in download.dbnsfp_archive."""
    output:
        archive="resources/dbnsfp/dbNSFP.zip",
        lock="resources/locks/dbnsfp.json",
    params:
        source=dl_cfg("dbnsfp_archive"),
    log:
        "logs/download/dbnsfp.log",
    localrule: True
    script:
        "../scripts/download_local.py"


rule liftover_ld_variants:
    """GRCh37 -> GRCh38 positions of one chromosome's LD variants (features only; windows stay GRCh37)."""
    input:
        variants=lambda wc: [f"{p}.gz" for p in window_prefixes(wc.chrom)],
        chain=dl_chain_file(),
    output:
        table="results/liftover/chr{chrom}.tsv.gz",
        report="results/liftover/chr{chrom}.report.json",
    log:
        "logs/liftover/chr{chrom}.log",
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/liftover.py"


rule download_all:
    """Every download of a real run (LD windows of download.chromosomes, sumstats, tracks, chain)."""
    input:
        "resources/locks/ukbb_ld.lock.tsv",
        [f"resources/locks/sumstats/{t}.json" for t in dl_ukbb_traits()],
        "resources/locks/tracks.lock.tsv",
        "resources/chain/hg19ToHg38.over.chain.gz",
        expand("results/liftover/chr{chrom}.tsv.gz", chrom=CHROMS),
    localrule: True
