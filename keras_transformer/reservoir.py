"""A bounded, seeded, uniform random sample of a stream, kept in stream order (reservoir sampling).

Tokenizers are trained on such a sample (SentencePiece's `input_sentence_size`), so their cost and
memory stop growing with the corpus. Li's Algorithm L ("Reservoir-sampling algorithms of time
complexity O(n(1 + log(N/n)))", 1994) draws random numbers only when it replaces an item, so a long
stream costs a counter per item. A stream no longer than the reservoir is kept whole, in order: on a
small corpus the sample is the corpus.

Example:
    >>> reservoir = Reservoir(size=3, seed=0)
    >>> for item in "abcdefgh":
    ...     reservoir.add(item)
    >>> reservoir.sample()                     # 3 of the 8, in stream order, the same for seed 0
    ['a', 'c', 'e']
"""

from __future__ import annotations

import math
import random
from typing import Any

from keras_transformer.serve.errors import OptionError


class Reservoir:
    """At most `size` items of a stream, each item equally likely to be kept.

    Args:
        size: the most items kept (>= 1).
        seed: seeds the generator: the same stream and seed give the same sample on any machine.
    """

    def __init__(self, size: int, seed: int = 0):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise OptionError(f"expected a reservoir size that is an integer >= 1, got {size!r}")
        self.size = size
        self.seen = 0  # items offered so far
        self._random = random.Random(seed)
        self._items: list[tuple[int, Any]] = []  # (stream index, item)
        self._weight = 0.0
        self._next = 0  # stream index of the next item that replaces one in the reservoir

    def _uniform(self) -> float:
        return 1.0 - self._random.random()  # in (0, 1]: log() is finite

    def _skip(self) -> None:
        """Algorithm L: the next index to take, after a geometric skip given the current weight."""
        self._next += math.floor(math.log(self._uniform()) / math.log1p(-self._weight)) + 1

    def add(self, item: Any) -> None:
        """Offers the next item of the stream."""
        index = self.seen
        self.seen += 1
        if index < self.size:  # filling: keep everything
            self._items.append((index, item))
            if self.seen == self.size:
                self._weight = math.exp(math.log(self._uniform()) / self.size)
                self._next = index
                self._skip()
            return
        if index == self._next:
            self._items[self._random.randrange(self.size)] = (index, item)
            self._weight *= math.exp(math.log(self._uniform()) / self.size)
            self._skip()

    def sample(self) -> list:
        """The kept items in stream order (all items, in order, when at most `size` were offered)."""
        return [item for _, item in sorted(self._items, key=lambda pair: pair[0])]

    def __len__(self) -> int:
        return len(self._items)
