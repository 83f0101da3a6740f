"""bench/longer_positions.py: a run's weights under longer max lengths read what the run read the
same way, and read longer inputs whole."""

import numpy as np

from bench.longer_positions import write_longer_run
from keras_transformer.run_dir import RunDir


def test_the_longer_run_has_the_same_weights_and_the_same_outputs_for_short_inputs(tmp_path, tiny_run):
    original = RunDir(tiny_run)
    write_longer_run(tiny_run, tmp_path / "longer", 96)
    longer = RunDir(tmp_path / "longer")
    assert (longer.transformer_config().max_source_length, longer.transformer_config().max_target_length) == (96, 96)
    assert longer.read_config()["model_options"]["max_source_length"] == 96
    assert original.transformer_config().max_source_length == 48  # the original run is left as it was
    before, after = original.load_model(), longer.load_model()
    for a, b in zip(before.get_weights(), after.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    source = rng.integers(4, 50, size=(2, 40))
    target = rng.integers(4, 50, size=(2, 30))
    feeds = {"source_ids": source, "target_ids": target}
    np.testing.assert_allclose(after.predict(feeds, verbose=0), before.predict(feeds, verbose=0), atol=1e-5)
    long_source = rng.integers(4, 50, size=(1, 90))  # past the original 48 positions
    assert np.isfinite(after.predict({"source_ids": long_source, "target_ids": target[:1]}, verbose=0)).all()
