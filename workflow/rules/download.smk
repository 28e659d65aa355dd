# Downloads: UKBB LD windows (public S3, unsigned), UKBB_409K summary statistics (requester-pays GCS),
# conservation / FANTOM5 / ENCODE bigWigs and the hg19ToHg38 chain (HTTP), dbNSFP (a local archive). Every
# download resumes, verifies, writes under a temporary name and records a lock entry (resources/locks/);
# the per-group lock TSVs list files in the manifest order, which is the order training reads them in. All
# run on the submit host (localrule). Config: the `download:` block (config/README.md); helpers in common.smk.
#
# A completed download is never rerun by a setting or a code update. Snakemake reruns a job, deleting its
# outputs first, when its params, its rule code or its script's mtime change. So:
# - settings that do not change a file's content (download.retries, download.backoff_s) are read from the
#   config inside the job, never params;
# - jobs that use the network have a `run:` block of one package call instead of a `script:` (a script is
#   compared by its mtime, which every `git pull` that touches it renews; a `run:` block by its text, and
#   the download logic lives in deepwas/downloads.py);
# - the UKBB LD windows (about 3 TB) are not Snakemake outputs at all: rule download_ukbb_ld_window
#   declares only the window's lock record and writes the .npz / .gz into ld.dir beside Snakemake, adopting
#   files already there when they are the bucket's (offline once verified) and never overwriting one. Rules
#   that read windows take the lock records as inputs (common.smk: ld_window_inputs). With `ld.source:
#   local` no rule touches ld.dir.

import download_rules  # noqa: E402  (workflow/scripts: one adapter per network rule)


wildcard_constraints:
    window="chr[0-9]+_[0-9]+_[0-9]+",
    track="[A-Za-z0-9_.+-]+",
    source="ucsc|fantom|encode",


rule download_ukbb_ld_window:
    """One window's .npz + .gz into ld.dir (not declared as outputs: never deleted by Snakemake) and its lock."""
    output:
        lock="resources/locks/ukbb_ld/{window}.json",
    log:
        "logs/download/ukbb_ld/{window}.log",
    retries: 0
    localrule: True
    params:
        ld_dir=lambda wc: ukbb_ld_dir(),
        bucket=dl_cfg("ld_bucket"),
        prefix=dl_cfg("ld_prefix"),
        endpoint=dl_cfg("s3_endpoint"),
    run:
        download_rules.ukbb_ld_window(wildcards, params, output, log, config["download"])


rule download_ukbb_ld_lock:
    """One lock TSV for the selected chromosomes plus the report of excluded (long-range / absent) windows."""
    input:
        locks=lambda wc: [f"resources/locks/ukbb_ld/{w}.json" for w in dl_ld_windows()],
    output:
        lock="resources/locks/ukbb_ld.lock.tsv",
        excluded="resources/ukbb/ld_excluded_windows.tsv",
    log:
        "logs/download/ukbb_ld_lock.log",
    localrule: True
    conda:
        "../../envs/deepwas.yaml"
    params:
        manifest=lambda wc: str(ld_manifest() or shipped_path("resources/ukbb_ld_windows.tsv")),
        chromosomes=dl_ld_chromosomes(),
        order=lambda wc: [f"{w}.{ext}" for w in dl_ld_windows() for ext in ("npz", "gz")],
    script:
        "../scripts/download_ld_lock.py"


rule check_ukbb_ld_manifest:
    """Lists the LD bucket ONCE (network) and writes a corrected manifest; not part of the default DAG."""
    output:
        "resources/ukbb_ld_windows.checked.tsv",
    log:
        "logs/download/check_ukbb_ld_manifest.log",
    localrule: True
    conda:
        "../../envs/deepwas.yaml"
    params:
        manifest=lambda wc: str(ld_manifest() or shipped_path("resources/ukbb_ld_windows.tsv")),
        bucket=dl_cfg("ld_bucket"),
        prefix=dl_cfg("ld_prefix"),
        endpoint=dl_cfg("s3_endpoint"),
    script:
        "../scripts/download_ld_manifest_check.py"


rule download_ukbb_sumstats:
    output:
        sumstats="resources/ukbb/sumstats/{trait}.sumstats.gz",
        lock="resources/locks/sumstats/{trait}.json",
    log:
        "logs/download/sumstats/{trait}.log",
    localrule: True
    params:
        bucket=dl_cfg("sumstats_bucket"),
        prefix=dl_cfg("sumstats_prefix"),
        billing=dl_cfg("billing_project"),
    run:
        download_rules.ukbb_sumstats(wildcards, params, output, log, config["download"])


rule download_sumstats_url:
    """A trait-sheet row whose path is an http(s) URL: fetched to resources/sumstats/{trait}/ by name."""
    output:
        sumstats="resources/sumstats/{trait}/{filename}",
        lock="resources/locks/sumstats_url/{trait}/{filename}.json",
    log:
        "logs/download/sumstats_url/{trait}/{filename}.log",
    localrule: True
    params:
        url=lambda wc: TRAITS.loc[wc.trait, "path"],
    run:
        download_rules.url(params, output.sumstats, output.lock, log, config["download"])


rule download_track_http:
    """UCSC conservation bigWigs, pinned by URL in config/manifests/ucsc_tracks.tsv."""
    output:
        bigwig="resources/tracks/{source}/{track}.bigWig",
        lock="resources/locks/tracks/{source}/{track}.json",
    log:
        "logs/download/tracks/{source}/{track}.log",
    wildcard_constraints:
        source="ucsc",
    localrule: True
    params:
        url=lambda wc: dl_track_url(wc.source, wc.track),
    run:
        download_rules.url(params, output.bigwig, output.lock, log, config["download"], name=wildcards.track)


rule fantom_datahub_index:
    """ONE listing of the FANTOM5 hg38 data-hub folder (download.fantom_base_url): href + decoded file name."""
    output:
        "resources/tracks/fantom/datahub_index.tsv",
    log:
        "logs/download/fantom_index.log",
    localrule: True
    params:
        base_url=dl_cfg("fantom_base_url"),
    run:
        download_rules.fantom_index(params, output, log, config["download"])


rule download_track_fantom:
    """FANTOM5 hCAGE TPM bigWig of one tissue and strand: the pinned `file`, else the unique data-hub file
    named '{tissue}.CNhs<id>.*.{strand}.bw' (rule in deepwas.downloads.resolve_fantom_file); the resolved
    name is recorded in the lock so it can be pinned."""
    input:
        index="resources/tracks/fantom/datahub_index.tsv",
    output:
        bigwig="resources/tracks/fantom/{track}.bigWig",
        lock="resources/locks/tracks/fantom/{track}.json",
    log:
        "logs/download/tracks/fantom/{track}.log",
    localrule: True
    params:
        row=lambda wc: dl_track_row("fantom", wc.track),
        base_url=dl_cfg("fantom_base_url"),
    run:
        download_rules.fantom_track(wildcards, input, params, output, log, config["download"])


rule resolve_encode_experiment:
    """ENCODE REST metadata -> one GRCh38 bigWig (rule in deepwas/encode.py), md5 and size from metadata."""
    output:
        "resources/tracks/encode/{track}.resolved.json",
    log:
        "logs/download/encode/{track}.resolve.log",
    localrule: True
    params:
        accession=lambda wc: dl_encode_accession(wc.track),
        assay=lambda wc: dl_track_row("encode", wc.track).get("assay", ""),
        target=lambda wc: dl_track_row("encode", wc.track).get("target", ""),
        base_url=dl_cfg("encode_base_url"),
        allow_warnings=dl_cfg("encode_allow_warnings"),
    run:
        download_rules.encode_experiment(params, output, log)


rule download_track_encode:
    input:
        resolved="resources/tracks/encode/{track}.resolved.json",
    output:
        bigwig="resources/tracks/encode/{track}.bigWig",
        lock="resources/locks/tracks/encode/{track}.json",
    log:
        "logs/download/tracks/encode/{track}.log",
    localrule: True
    run:
        download_rules.encode_track(wildcards, input, output, log, config["download"])


rule download_tracks_lock:
    """The track lock (manifest order: UCSC, FANTOM fwd/rev, ENCODE) and the features' track manifest."""
    input:
        locks=dl_track_locks(),
        bigwigs=dl_track_files(),
    output:
        lock="resources/locks/tracks.lock.tsv",
        manifest="resources/tracks/manifest.tsv",
        sizes="resources/tracks/chrom_sizes_grch38.tsv",
    log:
        "logs/download/tracks_lock.log",
    localrule: True
    conda:
        "../../envs/deepwas.yaml"
    params:
        order=dl_track_names(),
    script:
        "../scripts/download_tracks_lock.py"


rule download_chain:
    output:
        chain="resources/chain/hg19ToHg38.over.chain.gz",
        lock="resources/locks/chain/hg19ToHg38.over.chain.gz.json",
    log:
        "logs/download/chain.log",
    localrule: True
    params:
        url=dl_cfg("chain_url"),
    run:
        download_rules.url(params, output.chain, output.lock, log, config["download"])


rule dbnsfp_archive:
    """dbNSFP is licence-gated: the user downloads it and names the archive in download.dbnsfp_archive."""
    output:
        archive="resources/dbnsfp/dbNSFP.zip",
        lock="resources/locks/dbnsfp.json",
    log:
        "logs/download/dbnsfp.log",
    localrule: True
    params:
        source=dl_cfg("dbnsfp_archive"),
    run:
        download_rules.local_archive(params, output, log)


rule download_all:
    """Every download of a real run (LD windows of download.chromosomes unless ld.source is local, sumstats,
    tracks, chain) and the liftover of the LD variants."""
    input:
        ["resources/locks/ukbb_ld.lock.tsv"] if config["ld"]["source"] == "ukbb" else [],
        [f"resources/locks/sumstats/{t}.json" for t in dl_ukbb_traits()],
        "resources/locks/tracks.lock.tsv",
        "resources/chain/hg19ToHg38.over.chain.gz",
        expand("results/liftover/chr{chrom}.tsv.gz", chrom=CHROMS),
    localrule: True
