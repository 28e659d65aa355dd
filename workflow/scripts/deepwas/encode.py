"""Resolve ENCODE experiment accessions (paper App. D.3) to one GRCh38 bigWig file each, deterministically.

The paper used "the fold_change_over_control for a random replicate if it was available, otherwise a
randomly chosen annotation". A workflow must be reproducible, so the random choice is replaced by this
documented rule, applied to the experiment's REST JSON (`/experiments/{accession}/?format=json`):

1. the experiment itself must not carry ERROR or NOT_COMPLIANT audits (App. D.3: "we did not use
   annotations with warnings, errors, or that were non-compliant"); WARNING audits are rejected too when
   `allow_warnings` is False (default True, because most released experiments carry some warning and the
   paper's accession list already reflects its own screening);
2. candidate files: file_format == "bigWig", assembly == "GRCh38", status == "released", and no
   ERROR/NOT_COMPLIANT audit on the file;
3. ranked by: output_type "fold change over control" first; then the lowest biological replicate
   number (pooled files count by their lowest replicate, and a single-replicate file beats a pooled one
   with the same lowest number); then the lowest technical replicate; then the file accession;
4. the first one wins. Its md5sum and file_size from the metadata are what the download verifies.

An experiment with no candidate raises `EncodeResolutionError` naming the accession and what it had.

When the manifest row gives the assay and target (App. D.3 writes them with '_' for ' '), the experiment's
`assay_title` and `target.label` must match them (case and punctuation ignored; a title may carry a prefix
such as "in situ ChIA-PET"), else resolution fails
naming both: this is what catches a mistyped accession (two in the paper's list were; see
config/manifests/README.md) pointing at some other released experiment.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

BASE_URL = "https://www.encodeproject.org"
BAD_AUDITS = ("ERROR", "NOT_COMPLIANT")


class EncodeResolutionError(ValueError):
    pass


def experiment_url(accession: str, base_url: str = BASE_URL) -> str:
    return f"{base_url.rstrip('/')}/experiments/{accession}/?format=json"


def _audit_levels(obj: dict) -> set[str]:
    audit = obj.get("audit") or {}
    return {level for level, items in audit.items() if items}


def _reps(f: dict, key: str) -> list[int]:
    reps = f.get(key) or []
    out = []
    for r in reps:
        m = re.search(r"\d+", str(r))
        if m:
            out.append(int(m.group()))
    return sorted(out)


def rank_key(f: dict) -> tuple:
    bio = _reps(f, "biological_replicates")
    tech = [int(str(t).split("_")[-1]) for t in (f.get("technical_replicates") or []) if str(t).split("_")[-1].isdigit()]
    return (
        0 if f.get("output_type") == "fold change over control" else 1,
        bio[0] if bio else 10**9,
        len(bio) if bio else 10**9,
        min(tech) if tech else 10**9,
        f.get("accession", ""),
    )


def choose_file(experiment: dict, assembly: str = "GRCh38", allow_warnings: bool = True) -> dict:
    """Apply the documented rule to one experiment's JSON; return the chosen file's record."""
    acc = experiment.get("accession", "?")
    levels = _audit_levels(experiment)
    bad = sorted(levels & set(BAD_AUDITS + (() if allow_warnings else ("WARNING",))))
    if bad:
        raise EncodeResolutionError(f"{acc}: experiment has {'/'.join(bad)} audits; remove it from the manifest or review it")
    files = experiment.get("files") or []
    cand = [
        f for f in files
        if f.get("file_format") == "bigWig" and f.get("assembly") == assembly and f.get("status") == "released"
        and not (_audit_levels(f) & set(BAD_AUDITS))
    ]
    if not cand:
        kinds = sorted({(f.get("file_format"), f.get("assembly"), f.get("status")) for f in files}, key=str)
        raise EncodeResolutionError(f"{acc}: no released {assembly} bigWig without audit errors; files are {kinds}")
    best = min(cand, key=rank_key)
    return {
        "experiment": acc,
        "file": best["accession"],
        "href": best.get("href") or f"/files/{best['accession']}/@@download/{best['accession']}.bigWig",
        "md5": best.get("md5sum"),
        "size": best.get("file_size"),
        "output_type": best.get("output_type"),
        "biological_replicates": _reps(best, "biological_replicates"),
    }


def _norm(text) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text or "").lower())


def _target_labels(experiment: dict) -> list[str]:
    target = experiment.get("target")
    targets = target if isinstance(target, list) else [target] if target else []
    labels = []
    for t in targets:
        if isinstance(t, dict):
            labels.append(t.get("label") or t.get("name") or "")
        else:  # an @id such as /targets/CTCF-human/
            labels.append(str(t).rstrip("/").rsplit("/", 1)[-1].rsplit("-", 1)[0])
    return labels


def check_experiment(experiment: dict, assay: str | None = None, target: str | None = None) -> None:
    """The experiment is the one the manifest describes: same assay title and (when given) target label."""
    acc = experiment.get("accession", "?")
    if assay and not _norm(experiment.get("assay_title")).endswith(_norm(assay)):  # "in situ ChIA-PET" ~ ChIA-PET
        raise EncodeResolutionError(f"{acc}: manifest says assay {assay!r}, ENCODE says {experiment.get('assay_title')!r}; "
                                    "check the accession (or correct the manifest row)")
    labels = _target_labels(experiment)
    if target and _norm(target) not in {_norm(label) for label in labels}:
        raise EncodeResolutionError(f"{acc}: manifest says target {target!r}, ENCODE says {labels or 'none'}; "
                                    "check the accession (or correct the manifest row)")


def fetch_experiment(accession: str, base_url: str = BASE_URL, session=None, timeout: float = 60) -> dict:
    import requests

    s = session or requests.Session()
    r = s.get(experiment_url(accession, base_url), headers={"Accept": "application/json"}, timeout=timeout)
    if r.status_code == 404:
        raise EncodeResolutionError(f"{accession}: no such ENCODE experiment at {experiment_url(accession, base_url)}")
    r.raise_for_status()
    return r.json()


def resolve(accession: str, base_url: str = BASE_URL, session=None, allow_warnings: bool = True,
            assay: str | None = None, target: str | None = None) -> dict:
    experiment = fetch_experiment(accession, base_url, session)
    check_experiment(experiment, assay, target)
    rec = choose_file(experiment, allow_warnings=allow_warnings)
    rec["url"] = base_url.rstrip("/") + rec["href"]
    return rec


def save_metadata(path, experiment: dict) -> None:
    Path(path).write_text(json.dumps(experiment, indent=1, sort_keys=True))
