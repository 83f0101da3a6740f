"""Benchmarks that compare in one run, and the real-data recipes (bench/README.md).

`python -m bench` (or `make bench`) runs the suite, `decoding`, `training`, `footprint` and `load`
(`--only ctranslate2` adds CTranslate2 on the same weights), and writes bench/RESULTS.md;
`python -m bench --smoke` runs it on a tiny model in seconds. `python -m bench.recipes NAME` trains,
exports and evaluates a recipe on real data. Finished one-off A/B comparisons live in experiments/.
"""
