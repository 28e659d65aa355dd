"""Genomic features (issue 5): bigWig track store and per-variant windows, dbNSFP scores, derived
per-variant features, exact normalisation statistics, and the training-window loader."""
