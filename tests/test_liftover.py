"""Liftover: 0-based conversion, unmapped / multiple / other-chromosome variants counted and left NA."""
from pathlib import Path

import pandas as pd
import pytest

from deepwas.liftover import STATUSES, lift_positions, liftover_table, load_chain

CHAIN = Path(__file__).parent / "data" / "liftover" / "toy.over.chain.gz"


@pytest.fixture(scope="module")
def lo():
    return load_chain(CHAIN)


def test_positions_and_statuses(lo):
    # toy chain: chr1[0,100) -> chr1[50,150); gap; chr1[200,300) -> chr1[400,500) (0-based, half-open);
    # chr1[300,400) -> chr2; chr1[500,600) -> two places; chr5 absent
    chrom = ["1", "1", "1", "chr1", "1", "1", "1", "5"]
    pos = [1, 100, 101, 201, 300, 350, 550, 1000]
    out = lift_positions(chrom, pos, lo)
    assert list(out["liftover_status"]) == ["ok", "ok", "unmapped", "ok", "ok", "other_chrom", "multiple", "unknown_chrom"]
    assert list(out["POS38"].iloc[[0, 1, 3, 4]]) == [51, 150, 401, 500]
    assert out["POS38"].iloc[[2, 5, 6, 7]].isna().all()  # never a sentinel position
    assert list(out["CHR38"]) == ["1", "1", "", "1", "1", "", "", ""]


def test_table_keeps_every_row_and_counts(lo):
    df = pd.DataFrame({"rsid": list("abcde"), "chromosome": ["1"] * 5, "position": [1, 150, 350, 550, 250]})
    out, report = liftover_table(df, lo)
    assert len(out) == 5 and list(out["rsid"]) == list("abcde")
    assert list(out["position"]) == [1, 150, 350, 550, 250]  # GRCh37 positions untouched
    assert report == {"ok": 2, "unmapped": 1, "multiple": 1, "other_chrom": 1, "unknown_chrom": 0, "variants": 5}
    assert set(STATUSES) >= set(out["liftover_status"])


def test_missing_chain_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="chain file not found"):
        load_chain(tmp_path / "hg19ToHg38.over.chain.gz")
