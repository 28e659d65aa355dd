"""DeepWAS: functionally informed priors trained on GWAS summary statistics with the full LD likelihood.

Modules, in data-flow order: formats (file readers/writers) -> harmonise -> windows -> ld_factors ->
priors + likelihood -> training -> evaluation -> plots. `simulate` makes the offline demo cohort.
"""
__version__ = "0.1.0"
