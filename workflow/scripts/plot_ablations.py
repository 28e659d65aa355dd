"""Rule ablation_table: Table 1 (TSV and Markdown) and Fig. 6, the held-out gain of each ablation against the
full model (`deepwas.plots.ablation_table`, `ablation_bars`)."""
import pandas as pd

from deepwas.io import atomic_path, read_json, setup_logging, write_table
from deepwas.plots import ablation_bars, ablation_table, markdown_table


def main(full_tsv, summaries, names, out_tsv, out_md, out_png, log_path=None):
    setup_logging(log_path)
    ab = pd.DataFrame([dict(read_json(p), ablation=n) for p, n in zip(summaries, names)])
    table = ablation_table(pd.read_csv(full_tsv, sep="\t"), ab)
    write_table(out_tsv, table, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text("Table 1: held-out likelihood increase per person (%) of each ablation and of the full "
                       "model (difference = ablation - full).\n\n" + markdown_table(table))
    ablation_bars(table, out_png)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.full, list(sm.input.ablations), sm.params.names, sm.output.tsv, sm.output.md, sm.output.png,
         sm.log[0])
