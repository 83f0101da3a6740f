"""serve/heap.py: glibc's M_TOP_PAD is set when a model loads, and can be turned off."""

import platform

import pytest

from keras_transformer.serve import heap


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(heap, "_done", False)
    return monkeypatch


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_top_pad_is_set_on_glibc_and_turned_off_by_the_environment(fresh):
    fresh.setenv("KERAS_TRANSFORMER_TOP_PAD", "0")
    assert heap.retain_freed_heap() is False and heap._done is False
    fresh.setenv("KERAS_TRANSFORMER_TOP_PAD", "not a number")
    assert heap.retain_freed_heap() is False
    fresh.delenv("KERAS_TRANSFORMER_TOP_PAD")
    assert heap.retain_freed_heap() is True and heap._done is True


def test_loading_a_bundle_sets_it(fresh, tiny_bundle):
    from keras_transformer.serve import Translator

    calls = []
    original = heap.retain_freed_heap
    fresh.setattr("keras_transformer.serve.onnx_model.retain_freed_heap", lambda: calls.append(1) or original())
    Translator(tiny_bundle)
    assert calls == [1]
