"""Benchmarks that compare in one run: `python -m bench` (or `make bench`) writes bench/RESULTS.md.

Modules: `decoding` (speed of onnxruntime vs Keras decoding loops), `training` (model.fit
throughput of our layers vs Keras' own, FLOP/s vs a numpy matmul peak), `footprint` (cold start,
resident memory, bundle sizes). `python -m bench --smoke` runs them all on a tiny model in seconds.
"""
