"""Build resources/ukbb_ld_windows.tsv (the UKBB LD window manifest) from a listing of the LD bucket.

    python workflow/scripts/download_ld_manifest.py                       # from the recorded listing below
    python workflow/scripts/download_ld_manifest.py --listing ls.txt      # from `aws s3 ls` output
    aws s3 ls --no-sign-request s3://broad-alkesgroup-ukbb-ld/UKBB_LD/ > ls.txt

The manifest rows come from `deepwas.downloads.windows_from_keys` (kinds npz / npz2 / absent, see there).

RECORDED_LISTING summarises one real listing of s3://broad-alkesgroup-ukbb-ld/UKBB_LD/ (objects dated
2023-03-21; 5,556 window files + readme_ld.txt + two baselineLF tarballs), stored as
mecfs_bio/vend_files/broad_ukbb_ld_matrix_file_list.txt in github.com/trafalmadorian97/mecfs_bioinformatics
(commit 9543b46b0547c3dde95965ae24e2be7919ea47e3), read line by line. Windows are chr{c}_{s}_{s+3000000}
with s = 1 + k * 1,000,000; per chromosome the listing has every k from `first` to `last` except `gaps`
(inclusive k ranges); every listed window has `.gz`, and `.npz` except the `npz2` ones (`.npz2` + `.gz`;
no `.gz2` file exists). Totals: 2,763 `.npz` windows (the number in the paper, App. D.1) and 14 `.npz2`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

RECORDED_LISTING = {  # chromosome: (first k, last k, gaps [(k0, k1) inclusive], npz2 ks)
    1: (0, 249, [(122, 139)], []),
    2: (0, 243, [], []),
    3: (0, 197, [], []),
    4: (0, 191, [], []),
    5: (0, 180, [], []),
    6: (0, 171, [(28, 30)], [26, 27, 31, 32]),
    7: (0, 159, [], []),
    8: (0, 146, [], [8, 9]),
    9: (0, 141, [(48, 62)], []),
    10: (0, 135, [], []),
    11: (0, 134, [], list(range(47, 55))),
    12: (0, 133, [], []),
    13: (17, 115, [], []),
    14: (17, 107, [], []),
    15: (18, 102, [], []),
    16: (0, 90, [(36, 43)], []),
    17: (0, 81, [], []),
    18: (0, 78, [], []),
    19: (0, 59, [], []),
    20: (0, 62, [], []),
    21: (7, 48, [], []),
    22: (14, 51, [], []),
}
EXPECTED = {"npz": 2763, "npz2": 14}


def recorded_keys(prefix: str = "UKBB_LD/") -> list[str]:
    """The window object keys of the recorded listing."""
    keys = []
    for chrom, (first, last, gaps, npz2) in RECORDED_LISTING.items():
        skip = {k for a, b in gaps for k in range(a, b + 1)}
        for k in range(first, last + 1):
            if k in skip:
                continue
            name = f"{prefix}chr{chrom}_{1 + k * 1_000_000}_{1 + k * 1_000_000 + 3_000_000}"
            keys += [f"{name}.gz", f"{name}.npz2" if k in npz2 else f"{name}.npz"]
    return keys


def listing_keys(path) -> list[str]:
    """Object keys from `aws s3 ls` output (the last field of each line) or a plain list of keys."""
    return [line.split()[-1] for line in Path(path).read_text().splitlines() if line.strip()]


def build(listing=None):
    from deepwas.downloads import windows_from_keys

    keys = listing_keys(listing) if listing else recorded_keys()
    return windows_from_keys(keys)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listing", help="`aws s3 ls` output of the bucket prefix (default: the recorded listing)")
    ap.add_argument("--out", default="resources/ukbb_ld_windows.tsv")
    args = ap.parse_args(argv)
    man = build(args.listing)
    counts = man["kind"].value_counts().to_dict()
    man.to_csv(args.out, sep="\t", index=False)
    print(f"{args.out}: {len(man)} windows {counts}")
    if not args.listing and {k: counts.get(k, 0) for k in EXPECTED} != EXPECTED:
        print(f"expected {EXPECTED}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
