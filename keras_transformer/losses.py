"""Training objective and metric, both ignoring padding (label id PAD_ID).

Cross-entropy with label smoothing ε (paper §5.4): the target distribution is
q = (1 - ε) · one_hot(y) + ε / V, so the per-token loss is
(1 - ε) · (-log p_y) + ε · mean_v(-log p_v). The loss is the mean over real (non-pad) tokens.
"""

import keras
from keras import ops

from keras_transformer.serve.bundle_format import PAD_ID


def token_cross_entropy(labels, logits, label_smoothing=0.0):
    """labels int (B, T), logits (B, T, V) -> per-token loss (B, T), smoothed by ε = label_smoothing."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)  # (B, T, V)
    labels = ops.cast(labels, "int32")
    true_log_prob = ops.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]  # (B, T)
    loss = -true_log_prob
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * ops.mean(log_probs, axis=-1)
    return loss


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Sparse categorical cross-entropy from logits, mean over non-padding tokens, optional smoothing.

    y_true int (B, T) label ids, y_pred (B, T, V) logits -> scalar.
    """

    def __init__(self, label_smoothing=0.0, name="masked_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: expected 0 <= value < 1, got {label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        is_token = ops.cast(ops.not_equal(ops.cast(y_true, "int32"), PAD_ID), "float32")  # (B, T)
        loss = token_cross_entropy(y_true, y_pred, self.label_smoothing)  # (B, T)
        # Reweight so that Keras' mean over all B*T positions ("sum_over_batch_size", which also
        # scales correctly under tf.distribute) is the mean over real tokens only.
        positions = ops.cast(ops.size(is_token), "float32")
        return loss * is_token * (positions / ops.maximum(ops.sum(is_token), 1.0))  # (B, T)

    def get_config(self):
        return {"name": self.name, "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens whose argmax prediction is right, over all batches seen."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        is_token = ops.not_equal(y_true, PAD_ID)  # (B, T)
        hits = ops.logical_and(is_token, ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true))
        self.correct.assign_add(ops.sum(ops.cast(hits, "float32")))
        self.total.assign_add(ops.sum(ops.cast(is_token, "float32")))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)
