import math

import numpy as np
import pytest

from keras_transformer.losses import MaskedAccuracy, MaskedSparseCrossEntropy
from keras_transformer.schedule import WarmupInverseSquareRoot, transformer_optimizer


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_loss_equals_hand_computation_and_ignores_padding():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[4, 2, 0], [1, 0, 0]], np.int32)  # 3 real tokens, 3 pads
    log_p = _log_softmax(logits.astype(np.float64))
    real = [(0, 0), (0, 1), (1, 0)]
    expected = -sum(log_p[b, t, labels[b, t]] for b, t in real) / 3
    assert math.isclose(float(MaskedSparseCrossEntropy()(labels, logits)), expected, rel_tol=1e-5)
    # Changing logits at padded positions changes nothing.
    noisy = logits.copy()
    noisy[0, 2] += 100
    noisy[1, 1:] -= 50
    assert math.isclose(float(MaskedSparseCrossEntropy()(labels, noisy)), expected, rel_tol=1e-5)


def test_label_smoothing_equals_hand_computation():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 4, 6)).astype("float32")
    labels = np.array([[3, 5, 2, 0]], np.int32)
    eps, vocab = 0.1, 6
    log_p = _log_softmax(logits.astype(np.float64))
    total = 0.0
    for t in range(3):
        q = np.full(vocab, eps / vocab)
        q[labels[0, t]] += 1 - eps
        total += -(q * log_p[0, t]).sum()
    loss = float(MaskedSparseCrossEntropy(label_smoothing=eps)(labels, logits))
    assert math.isclose(loss, total / 3, rel_tol=1e-5)


def test_label_smoothing_range_is_checked():
    with pytest.raises(ValueError, match=r"label_smoothing: expected 0 <= value < 1, got 1.0"):
        MaskedSparseCrossEntropy(label_smoothing=1.0)


def test_masked_accuracy_counts_only_real_tokens_across_batches():
    metric = MaskedAccuracy()
    logits = np.zeros((1, 3, 4), np.float32)
    logits[0, 0, 2] = logits[0, 1, 1] = logits[0, 2, 3] = 1.0
    metric.update_state(np.array([[2, 3, 0]]), logits)  # 1 of 2 real tokens right; the pad is ignored
    metric.update_state(np.array([[2, 1, 3]]), logits)  # 3 of 3
    assert math.isclose(float(metric.result()), 4 / 5, rel_tol=1e-6)


def test_schedule_matches_the_paper_formula():
    schedule = WarmupInverseSquareRoot(hidden_dim=512, warmup_steps=4000)
    for step in (1, 100, 3999, 4000, 4001, 20000):
        expected = 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        assert math.isclose(float(schedule(step - 1)), expected, rel_tol=1e-5)  # the optimizer counts from 0
    peak = float(schedule(3999))
    assert float(schedule(1999)) < peak and float(schedule(7999)) < peak


def test_optimizer_is_adam_with_the_paper_betas():
    optimizer = transformer_optimizer(hidden_dim=64, warmup_steps=10)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.98, 1e-9)
