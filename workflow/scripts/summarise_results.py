"""Rule summary: one table of held-out results for every trait and model, and a short text summary."""
import json

import pandas as pd

from deepwas.evaluation import combine
from deepwas.io import atomic_path, setup_logging, write_table


def main(summaries, out_tsv, out_txt, log_path=None):
    log = setup_logging(log_path)
    df = combine([pd.DataFrame([json.load(open(p))]) for p in summaries])
    write_table(out_tsv, df, float_format="%.6g")
    lines = ["DeepWAS held-out results (percentage likelihood increase per person vs the null, f = 0)", ""]
    for trait, g in df.groupby("trait", sort=True):
        lines.append(f"{trait}:")
        for _, r in g.iterrows():
            lines.append(f"  {r['model']:<12} {r['objective']:<8} {r['pct_per_person']:>9.4f} %   "
                         f"delta NLL {r['delta_nll']:>10.3f} over {r['n_windows']} windows")
    text = "\n".join(lines) + "\n"
    with atomic_path(out_txt) as tmp:
        tmp.write_text(text)
    log.info("\n%s", text)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input, sm.output.tsv, sm.output.txt, sm.log[0])
