"""The model's hyperparameters: `ModelOptions` (what a user chooses) and `TransformerConfig` (those plus
the vocabulary sizes, which only the trained tokenizers fix). Validated once, stored as JSON.

Names from the paper: N = num_layers, d_model = hidden_dim, h = num_heads, d_ff = intermediate_dim,
P_drop = dropout. The paper's base model is N=6, d_model=512, h=8, d_ff=2048, P_drop=0.1; the
defaults here are a smaller model for one CPU (N=3, d_model=256, h=4, d_ff=1024), what `train` uses
unless told otherwise. The encoder and the decoder may have different depths (`encoder_layers`,
`decoder_layers`, each N unless given): decoding time is spent in the decoder, so students for the
edge keep a deep encoder and a shallow decoder (Kasai et al., 2021; Bergamot's 6+2 students).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from keras_transformer.serve.errors import OptionError

ACTIVATIONS = ("relu", "gelu")
POSITIVE_INTEGERS = ("num_layers", "encoder_layers", "decoder_layers", "hidden_dim", "num_heads", "intermediate_dim",
                     "max_source_length", "max_target_length")


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """The architecture a user chooses; `TransformerConfig` adds the vocabulary sizes."""

    num_layers: int = 3  # N: the depth of both stacks, unless encoder_layers / decoder_layers say otherwise
    encoder_layers: int | None = None  # None: num_layers
    decoder_layers: int | None = None  # None: num_layers
    hidden_dim: int = 256
    num_heads: int = 4
    intermediate_dim: int = 1024
    dropout: float = 0.1
    max_source_length: int = 128  # most source tokens, EOS included
    max_target_length: int = 128  # most target tokens, EOS included
    norm_first: bool = False  # False: post-norm as in the paper; True: pre-norm
    activation: str = "relu"
    layer_norm_epsilon: float = 1e-6
    tie_output_embedding: bool = True  # share the target embedding with the pre-softmax linear (§3.4)
    share_embeddings: bool = False  # one token embedding for source and target (needs one shared vocabulary)

    def __post_init__(self):
        name = type(self).__name__
        for field in ("encoder_layers", "decoder_layers"):
            if getattr(self, field) is None:
                object.__setattr__(self, field, self.num_layers)
        for field in POSITIVE_INTEGERS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name}.{field}: expected a positive integer, got {value!r}")
        if self.hidden_dim % self.num_heads:
            raise OptionError(f"{name}: expected hidden_dim divisible by num_heads, got hidden_dim="
                              f"{self.hidden_dim} and num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise OptionError(f"{name}.dropout: expected 0 <= dropout < 1, got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise OptionError(f"{name}.activation: expected one of {ACTIVATIONS}, got {self.activation!r}")
        if not self.layer_norm_epsilon > 0:
            raise OptionError(f"{name}.layer_norm_epsilon: expected > 0, got {self.layer_norm_epsilon!r}")

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / h."""
        return self.hidden_dim // self.num_heads


@dataclass(frozen=True, kw_only=True)
class TransformerConfig(ModelOptions):
    """Every hyperparameter of a built model: `ModelOptions` plus the two vocabulary sizes."""

    source_vocab_size: int
    target_vocab_size: int

    def __post_init__(self):
        super().__post_init__()
        for field in ("source_vocab_size", "target_vocab_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 5:
                raise OptionError(f"TransformerConfig.{field}: expected at least 5 ids (4 special tokens + 1), "
                                  f"got {value!r}")
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise OptionError(
                "TransformerConfig: share_embeddings needs one vocabulary for both sides, got source_vocab_size="
                f"{self.source_vocab_size} and target_vocab_size={self.target_vocab_size}")

    @property
    def options(self) -> ModelOptions:
        """The `ModelOptions` part (without the vocabulary sizes)."""
        return ModelOptions(**{field.name: getattr(self, field.name) for field in dataclasses.fields(ModelOptions)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TransformerConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise OptionError(f"TransformerConfig: unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)
