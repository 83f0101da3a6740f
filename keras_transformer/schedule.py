"""The paper's learning-rate schedule (§5.3) and its optimizer.

lrate = scale · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5), with step counted from 1:
linear warm-up for `warmup_steps`, then decay with the inverse square root of the step.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class WarmupInverseSquareRoot(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, hidden_dim, warmup_steps=4000, scale=1.0):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps: expected >= 1, got {warmup_steps!r}")
        self.hidden_dim = hidden_dim
        self.warmup_steps = warmup_steps
        self.scale = scale

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # the optimizer counts from 0, the formula from 1
        return (self.scale * self.hidden_dim**-0.5
                * ops.minimum(ops.rsqrt(step), step * self.warmup_steps**-1.5))

    def get_config(self):
        return {"hidden_dim": self.hidden_dim, "warmup_steps": self.warmup_steps, "scale": self.scale}


def transformer_optimizer(hidden_dim, warmup_steps=4000, scale=1.0, clipnorm=None):
    """Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9 (paper §5.3) on the warm-up schedule."""
    return keras.optimizers.Adam(WarmupInverseSquareRoot(hidden_dim, warmup_steps, scale),
                                 beta_1=0.9, beta_2=0.98, epsilon=1e-9, clipnorm=clipnorm)
