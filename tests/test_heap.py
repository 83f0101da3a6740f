"""serve/heap.py: glibc's M_TOP_PAD is set by the commands that decode (not by loading a model), and can be
turned off."""

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


def test_the_translate_command_sets_it_and_loading_a_bundle_does_not(fresh, tiny_bundle, capsys):
    from keras_transformer.cli import main
    from keras_transformer.serve import Translator

    calls = []
    fresh.setattr(heap, "retain_freed_heap", lambda: calls.append(1) or True)
    Translator(tiny_bundle)
    assert calls == []
    assert main(["translate", str(tiny_bundle), "I sit."]) == 0
    assert calls == [1] and capsys.readouterr().out.strip()
