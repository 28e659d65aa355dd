"""Adapters of the network rules in workflow/rules/download.smk: each rule's `run:` block is one call here.

Network rules use `run:` blocks rather than `script:` so that an edit of a script (a `git pull`) never
reruns a completed, verified download: Snakemake compares a `run:` block by its code, a script by its
modification time. The retry settings come from the config at run time (`dl`: the `download:` block), not
from params, so editing them never reruns a download either. Each adapter unpacks the rule's namespace and
calls one `deepwas.downloads` function.
"""
from deepwas import downloads


def _retry(dl: dict) -> dict:
    return {"retries": int(dl["retries"]), "backoff": float(dl["backoff_s"])}


def ukbb_ld_window(wildcards, params, output, log, dl):
    rec = downloads.download_ukbb_ld_window(wildcards.window, params.ld_dir, output.lock, bucket=params.bucket,
                                            prefix=params.prefix, endpoint_url=params.endpoint, **_retry(dl))
    downloads.log_result(log[0], "fetched", rec)


def ukbb_sumstats(wildcards, params, output, log, dl):
    rec = downloads.download_ukbb_sumstats(wildcards.trait, output.sumstats, output.lock, billing=params.billing,
                                           bucket=params.bucket, prefix=params.prefix, **_retry(dl))
    downloads.log_result(log[0], "fetched", rec)


def url(params, target, lock, log, dl, name=None):
    rec = downloads.download_url(params.url, target, lock, **({"name": name} if name else {}), **_retry(dl))
    downloads.log_result(log[0], "fetched", rec)


def fantom_index(params, output, log, dl):
    index = downloads.fetch_fantom_index(params.base_url, output[0], **_retry(dl))
    downloads.log_result(log[0], f"{params.base_url}: bigWig files listed", len(index))


def fantom_track(wildcards, input, params, output, log, dl):
    rec = downloads.download_fantom_track(dict(params.row), input.index, params.base_url, output.bigwig,
                                          output.lock, name=wildcards.track, **_retry(dl))
    downloads.log_result(log[0], "fetched", rec)


def encode_experiment(params, output, log):
    rec = downloads.resolve_encode_track(params.accession, output[0], base_url=params.base_url,
                                         allow_warnings=bool(params.allow_warnings), assay=params.assay,
                                         target=params.target)
    downloads.log_result(log[0], "resolved", rec)


def encode_track(wildcards, input, output, log, dl):
    rec = downloads.download_encode_track(input.resolved, output.bigwig, output.lock, name=wildcards.track,
                                          **_retry(dl))
    downloads.log_result(log[0], "fetched", rec)


def local_archive(params, output, log):
    downloads.log_result(log[0], "copied", downloads.copy_local_archive(params.source, output.archive, output.lock))
