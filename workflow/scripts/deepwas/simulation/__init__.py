"""Simulations (paper Sec. 6.1, App. A.5 and B.1).

- `cohort`: the embedded msprime demo cohort (genotypes, LD, summary statistics, true f);
- `tracks`: synthetic bigWig tracks and a GRCh37 -> GRCh38 chain for the demo;
- `truths`: ground truths f (App. B.1 threshold enrichment, App. A.5 network truth, the A.5 level);
- `semisynthetic`: the semi-synthetic recovery experiment on real LD factors and features.
"""
