"""File formats: one reader/writer module per format (UKBB LD windows, summary statistics)."""
