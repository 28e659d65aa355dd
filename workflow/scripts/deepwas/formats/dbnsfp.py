"""dbNSFP variant files (paper App. D.2), read in chunks without unpacking the archive.

dbNSFP 4.x / 5.x is distributed as one zip (tens of GB) holding one bgzipped, tab-separated file per GRCh38
chromosome, `dbNSFP4.4a_variant.chr1.gz` ... (`dbNSFP5.1a_variant.chr1.gz`), whose header line starts
`#chr  pos(1-based)  ref  alt  aaref  aaalt  rs_dbSNP  hg19_chr  hg19_pos(1-based)  ...` followed by several
hundred score columns. `dbnsfp_sources` finds what to read for one chromosome in what the user gave
(download.dbnsfp_archive, copied to resources/dbnsfp/dbNSFP.zip): such a zip, a directory of the
per-chromosome files, or one (gzipped) file with every chromosome (then every chromosome's job reads all of
it). The format is told by the file's first bytes, not its name. `read_dbnsfp_chunks` streams the requested
columns of those files, `chunk_rows` lines at a time, as strings (cells such as "0.1;.;0.03" are reduced
by `features.dbnsfp`).
"""
from __future__ import annotations

import contextlib
import gzip
import io
import re
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

MEMBER = re.compile(r"_variant\.chr([0-9XYM]+)\.gz$")


class DbNSFPFormatError(ValueError):
    pass


def _magic(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4)


def _text(raw) -> io.TextIOBase:
    """A text stream over the binary stream `raw` (which has `peek`), gunzipped when it starts with the gzip
    magic (bgzip included). Closing it leaves `raw` open (its owner closes it)."""
    if raw.peek(2)[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


@contextlib.contextmanager
def _open_file(path: Path):
    with open(path, "rb") as raw, _text(raw) as fh:
        yield fh


@contextlib.contextmanager
def _open_member(path: Path, name: str):
    with zipfile.ZipFile(path) as zf, zf.open(name) as raw, _text(raw) as fh:
        yield fh


def dbnsfp_sources(path, chrom: str) -> list[tuple[str, Callable]]:
    """[(label, opener)] of the dbNSFP files holding GRCh38 chromosome `chrom`: the per-chromosome member of a
    zip or directory, or the one file with every chromosome. `opener()` is a context manager of a text stream."""
    path = Path(path)
    chrom = str(chrom).removeprefix("chr")
    if not path.exists():
        raise FileNotFoundError(f"{path}: dbNSFP archive not found; set download.dbnsfp_archive to the archive "
                                "you downloaded from dbnsfp.org (licence-gated) and rerun")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if MEMBER.search(p.name))
        per = [p for p in files if MEMBER.search(p.name).group(1) == chrom]
        if per:
            return [(str(per[0]), lambda f=per[0]: _open_file(f))]
        raise DbNSFPFormatError(f"{path}: no dbNSFP file for chromosome {chrom} (expected a name ending in "
                                f"_variant.chr{chrom}.gz; found {[p.name for p in files][:5]})")
    if _magic(path) == b"PK\x03\x04":
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        per = [n for n in names if MEMBER.search(n) and MEMBER.search(n).group(1) == chrom]
        if not per:
            single = [n for n in names if re.search(r"_variant[^/]*\.gz$", n) and not MEMBER.search(n)]
            if len(single) != 1:
                raise DbNSFPFormatError(
                    f"{path}: zip has no dbNSFP variant file for chromosome {chrom} (members ending in "
                    f"_variant.chr{chrom}.gz; found {[n for n in names if n.endswith('.gz')][:6]}); is it the "
                    "dbNSFP 4.x/5.x academic or commercial archive?")
            per = single
        return [(f"{path}:{per[0]}", lambda name=per[0]: _open_member(path, name))]
    return [(str(path), lambda: _open_file(path))]


def read_dbnsfp_chunks(path, chrom: str, columns: list[str], chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    """The `columns` of the dbNSFP lines of `chrom`'s file(s) (`dbnsfp_sources`), `chunk_rows` at a time, as
    strings ('.' kept), in the order asked. A missing column stops the run naming the file and what to do."""
    for label, opener in dbnsfp_sources(path, chrom):
        with opener() as fh:
            header = fh.readline().rstrip("\r\n").split("\t")
            missing = [c for c in columns if c not in header]
            if missing:
                raise DbNSFPFormatError(
                    f"{label}: dbNSFP header lacks column(s) {missing} (header starts {header[:10]}); the six "
                    "scores of App. D.2 need a dbNSFP release that has all six (4.4a and later 4.x, 5.x), with "
                    "the '#chr pos(1-based) ref alt ... hg19_chr hg19_pos(1-based)' columns")
            for chunk in pd.read_csv(fh, sep="\t", header=None, names=header, usecols=columns, dtype=str,
                                     chunksize=chunk_rows, na_filter=False, quoting=3):
                yield chunk[list(columns)]
