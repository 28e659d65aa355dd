"""Genomic features (paper Sec. 5, App. D.2-D.3): bigWig track store and per-variant windows, dbNSFP scores, derived
per-variant features, exact normalisation statistics, and the training-window loader."""
