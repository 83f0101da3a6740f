"""Finished A/B comparisons, kept runnable with their results (experiments/README.md); not product
code and not maintained with it. Run from the repository root: `python -m experiments.NAME --help`."""
