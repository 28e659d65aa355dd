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

wildcard_constraints:
    window="chr[0-9]+_[0-9]+_[0-9]+",
    track="[A-Za-z0-9_.+-]+",
    source="ucsc|fantom|encode",


rule download_ukbb_ld_window:
    """One window's .npz + .gz into ld.dir (not declared as outputs: never deleted by Snakemake) and its lock."""
    output:
        lock="resources/locks/ukbb_ld/{window}.json",
    params:
        ld_dir=lambda wc: ukbb_ld_dir(),
        bucket=dl_cfg("ld_bucket"),
        prefix=dl_cfg("ld_prefix"),
        endpoint=dl_cfg("s3_endpoint"),
    log:
        "logs/download/ukbb_ld/{window}.log",
    localrule: True
    retries: 0
    run:
        from deepwas import downloads as dl

        rec = dl.download_ukbb_ld_window(wildcards.window, params.ld_dir, output.lock, bucket=params.bucket,
                                         prefix=params.prefix, endpoint_url=params.endpoint,
                                         retries=int(dl_cfg("retries")), backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


rule download_ukbb_ld_lock:
    """One lock TSV for the selected chromosomes plus the report of excluded (long-range / absent) windows."""
    input:
        locks=lambda wc: [f"resources/locks/ukbb_ld/{w}.json" for w in dl_ld_windows()],
    output:
        lock="resources/locks/ukbb_ld.lock.tsv",
        excluded="resources/ukbb/ld_excluded_windows.tsv",
    params:
        manifest=lambda wc: str(ld_manifest() or shipped_path("resources/ukbb_ld_windows.tsv")),
        chromosomes=dl_ld_chromosomes(),
        order=lambda wc: [f"{w}.{ext}" for w in dl_ld_windows() for ext in ("npz", "gz")],
    log:
        "logs/download/ukbb_ld_lock.log",
    localrule: True
    script:
        "../scripts/download_ld_lock.py"


rule check_ukbb_ld_manifest:
    """Lists the LD bucket ONCE (network) and writes a corrected manifest; not part of the default DAG."""
    output:
        "resources/ukbb_ld_windows.checked.tsv",
    params:
        manifest=lambda wc: str(ld_manifest() or shipped_path("resources/ukbb_ld_windows.tsv")),
        bucket=dl_cfg("ld_bucket"),
        prefix=dl_cfg("ld_prefix"),
        endpoint=dl_cfg("s3_endpoint"),
    log:
        "logs/download/check_ukbb_ld_manifest.log",
    localrule: True
    script:
        "../scripts/download_ld_manifest_check.py"


rule download_ukbb_sumstats:
    output:
        sumstats="resources/ukbb/sumstats/{trait}.sumstats.gz",
        lock="resources/locks/sumstats/{trait}.json",
    params:
        bucket=dl_cfg("sumstats_bucket"),
        prefix=dl_cfg("sumstats_prefix"),
        billing=dl_cfg("billing_project"),
    log:
        "logs/download/sumstats/{trait}.log",
    localrule: True
    run:
        from deepwas import downloads as dl

        rec = dl.download_ukbb_sumstats(wildcards.trait, output.sumstats, output.lock, billing=params.billing,
                                        bucket=params.bucket, prefix=params.prefix,
                                        retries=int(dl_cfg("retries")), backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


rule download_sumstats_url:
    """A trait-sheet row whose path is an http(s) URL: fetched to resources/sumstats/{trait}/ by name."""
    output:
        sumstats="resources/sumstats/{trait}/{filename}",
        lock="resources/locks/sumstats_url/{trait}/{filename}.json",
    params:
        url=lambda wc: TRAITS.loc[wc.trait, "path"],
    log:
        "logs/download/sumstats_url/{trait}/{filename}.log",
    localrule: True
    run:
        from deepwas import downloads as dl

        rec = dl.download_url(params.url, output.sumstats, output.lock, retries=int(dl_cfg("retries")),
                              backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


rule download_track_http:
    """UCSC conservation bigWigs, pinned by URL in config/manifests/ucsc_tracks.tsv."""
    output:
        bigwig="resources/tracks/{source}/{track}.bigWig",
        lock="resources/locks/tracks/{source}/{track}.json",
    wildcard_constraints:
        source="ucsc",
    params:
        url=lambda wc: dl_track_url(wc.source, wc.track),
    log:
        "logs/download/tracks/{source}/{track}.log",
    localrule: True
    run:
        from deepwas import downloads as dl

        rec = dl.download_url(params.url, output.bigwig, output.lock, name=wildcards.track,
                              retries=int(dl_cfg("retries")), backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


rule fantom_datahub_index:
    """ONE listing of the FANTOM5 hg38 data-hub folder (download.fantom_base_url): href + decoded file name."""
    output:
        "resources/tracks/fantom/datahub_index.tsv",
    params:
        base_url=dl_cfg("fantom_base_url"),
    log:
        "logs/download/fantom_index.log",
    localrule: True
    run:
        from deepwas import downloads as dl

        index = dl.fetch_fantom_index(params.base_url, output[0], retries=int(dl_cfg("retries")),
                                      backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], f"{params.base_url}: bigWig files listed", len(index))


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
    log:
        "logs/download/tracks/fantom/{track}.log",
    localrule: True
    run:
        from deepwas import downloads as dl

        rec = dl.download_fantom_track(dict(params.row), input.index, params.base_url, output.bigwig, output.lock,
                                       name=wildcards.track, retries=int(dl_cfg("retries")),
                                       backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


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
    run:
        from deepwas import downloads as dl

        rec = dl.resolve_encode_track(params.accession, output[0], base_url=params.base_url,
                                      allow_warnings=bool(params.allow_warnings), assay=params.assay,
                                      target=params.target)
        dl.log_result(log[0], "resolved", rec)


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
        from deepwas import downloads as dl

        rec = dl.download_encode_track(input.resolved, output.bigwig, output.lock, name=wildcards.track,
                                       retries=int(dl_cfg("retries")), backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


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
        "../scripts/download_tracks_lock.py"


rule download_chain:
    output:
        chain="resources/chain/hg19ToHg38.over.chain.gz",
        lock="resources/locks/chain/hg19ToHg38.over.chain.gz.json",
    params:
        url=dl_cfg("chain_url"),
    log:
        "logs/download/chain.log",
    localrule: True
    run:
        from deepwas import downloads as dl

        rec = dl.download_url(params.url, output.chain, output.lock, retries=int(dl_cfg("retries")),
                              backoff=float(dl_cfg("backoff_s")))
        dl.log_result(log[0], "fetched", rec)


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
    run:
        from deepwas import downloads as dl

        dl.log_result(log[0], "copied", dl.copy_local_archive(params.source, output.archive, output.lock))


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
