"""All attention masks, computed from token ids in one place. True = may attend.

Masks are boolean and broadcast against attention scores of shape (B, H, T_query, T_key):
- padding mask (B, 1, 1, T_key): PAD_ID keys are hidden from every query (encoder self-attention,
  decoder cross-attention, decoder self-attention). Cross-attention uses the *source* padding, never
  the target's (the keras-io #1964 bug).
- causal mask (1, 1, T, T): query i sees keys 0..i only, so no position sees the future.
"""

from keras import ops

from keras_transformer.serve.bundle_format import PAD_ID


def padding_mask(token_ids):
    """token_ids int (B, T) -> bool (B, 1, 1, T): True where the key is a real token."""
    return ops.not_equal(token_ids, PAD_ID)[:, None, None, :]


def causal_mask(length):
    """bool (1, 1, T, T), lower triangular: query i may attend to keys j <= i."""
    positions = ops.arange(length)
    return (positions[None, :] <= positions[:, None])[None, None, :, :]


def decoder_self_attention_mask(target_ids):
    """target_ids int (B, T) -> bool (B, 1, T, T): causal and not padding."""
    return ops.logical_and(causal_mask(ops.shape(target_ids)[1]), padding_mask(target_ids))
