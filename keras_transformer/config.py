"""`TransformerConfig`: every hyperparameter of the model, validated once, stored as JSON.

Names from the paper: N = num_layers, d_model = hidden_dim, h = num_heads, d_ff = intermediate_dim,
P_drop = dropout. The base model of the paper is N=6, d_model=512, h=8, d_ff=2048, P_drop=0.1; our
defaults are a smaller model for one CPU (N=3, d_model=256, h=4, d_ff=1024), the one `train` uses
unless told otherwise. They are written once, here: `ModelOptions` (what a user chooses before the
tokenizers fix the vocabulary sizes) takes its fields and defaults from `TransformerConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ACTIVATIONS = ("relu", "gelu")


@dataclass(frozen=True)
class TransformerConfig:
    source_vocab_size: int
    target_vocab_size: int
    num_layers: int = 3
    hidden_dim: int = 256
    num_heads: int = 4
    intermediate_dim: int = 1024
    dropout: float = 0.1
    max_source_length: int = 128
    max_target_length: int = 128
    norm_first: bool = False  # False: post-norm as in the paper; True: pre-norm
    activation: str = "relu"
    layer_norm_epsilon: float = 1e-6
    tie_output_embedding: bool = True  # share the target embedding with the pre-softmax linear (§3.4)
    share_embeddings: bool = False  # one token embedding for source and target (needs one shared vocabulary)

    def __post_init__(self):
        for name in ("source_vocab_size", "target_vocab_size", "num_layers", "hidden_dim",
                     "num_heads", "intermediate_dim", "max_source_length", "max_target_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TransformerConfig.{name}: expected a positive integer, got {value!r}")
        if self.source_vocab_size < 5 or self.target_vocab_size < 5:
            raise ValueError(
                "TransformerConfig: expected vocabularies of at least 5 ids (4 special tokens + 1), got "
                f"source_vocab_size={self.source_vocab_size}, target_vocab_size={self.target_vocab_size}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"TransformerConfig: expected hidden_dim divisible by num_heads, got hidden_dim="
                f"{self.hidden_dim} and num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout: expected 0 <= dropout < 1, got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TransformerConfig.activation: expected one of {ACTIVATIONS}, got {self.activation!r}")
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError(
                "TransformerConfig: share_embeddings needs one vocabulary for both sides, got source_vocab_size="
                f"{self.source_vocab_size} and target_vocab_size={self.target_vocab_size}")
        if not self.layer_norm_epsilon > 0:
            raise ValueError(f"TransformerConfig.layer_norm_epsilon: expected > 0, got {self.layer_norm_epsilon!r}")

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / h."""
        return self.hidden_dim // self.num_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TransformerConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"TransformerConfig: unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)


VOCABULARY_FIELDS = ("source_vocab_size", "target_vocab_size")


def _check_model_options(options) -> None:
    TransformerConfig(source_vocab_size=5, target_vocab_size=5, **dataclasses.asdict(options))


ModelOptions = dataclasses.make_dataclass(
    "ModelOptions",
    [(field.name, field.type, dataclasses.field(default=field.default))
     for field in dataclasses.fields(TransformerConfig) if field.name not in VOCABULARY_FIELDS],
    frozen=True,
    namespace={"__post_init__": _check_model_options, "__module__": __name__},
)
ModelOptions.__doc__ = """The `TransformerConfig` fields a user chooses, with its defaults and checks; the vocabulary
sizes come later, from the trained tokenizers (`train` builds the TransformerConfig)."""
