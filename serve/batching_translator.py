"""`BatchingTranslator`: requests from many callers decoded together (dynamic batching) on every replica.

    >>> batcher = BatchingTranslator(Translator("bundle/", replicas=2))
    >>> future = batcher.submit(["How are you?"], DecodingOptions(beam_size=4))
    >>> future.result()                                  # list[Translation], as translate_batch returns
    >>> batcher.close()

Requests wait in one queue. A free replica (a worker thread with its own onnxruntime sessions) takes
the oldest request together with the waiting requests whose options are the same, up to
`max_batch_tokens` padded source tokens, and decodes all their sentences in one search: sentences of
different requests are sorted by length together and share batches (Triton's dynamic batcher,
CTranslate2's token-sized batches). A sentence's result never depends on the sentences it shares a
batch with (serve/batching.py), so each request receives exactly what translating it alone gives.

A request that arrives while nothing else is in flight starts at once: a lone user pays no batching
delay. While other work is in flight, a free replica waits up to `max_wait_ms` after the oldest
request's arrival for more to join it. A request whose texts or options are invalid fails at
`submit`, alone; should a whole batch fail, its requests are retried one by one, so only the one at
fault fails. At most `max_queue` requests wait: beyond, `submit` raises `QueueFull` at once (HTTP 503).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import threading
import time
from concurrent.futures import Future

from .decoding_options import DecodingOptions
from .errors import KerasTransformerError, OptionError

RECENT_BATCHES = 32  # batch sizes kept for `stats()`
DEFAULT_MAX_BATCH_TOKENS = 4096  # padded source tokens decoded in one search
DEFAULT_MAX_WAIT_MS = 2.0  # how long a free replica waits for more requests while others are in flight
DEFAULT_MAX_QUEUE = 256  # requests waiting; beyond, QueueFull (HTTP 503)


class QueueFull(KerasTransformerError, RuntimeError):
    """The queue holds `max_queue` requests already: try again later."""


@dataclasses.dataclass
class _Request:
    encoded: object  # the Translator's encoded texts (what `Translator.encode` returns)
    options: DecodingOptions
    future: Future
    arrived: float
    longest: int  # source tokens of its longest sentence, EOS included (0: only blank texts)
    sentences: int


class BatchingTranslator:
    """Dynamic batching over a `Translator`'s replicas (see the module docstring).

    Args:
        translator: a `Translator` (its `replicas` are the workers).
        max_batch_tokens: most padded source tokens (sentences x longest) in one search.
        max_wait_ms: how long a free replica waits for more requests while others are in flight.
        max_queue: most requests waiting; beyond, `submit` raises `QueueFull`.
    """

    def __init__(self, translator, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                 max_wait_ms: float = DEFAULT_MAX_WAIT_MS, max_queue: int = DEFAULT_MAX_QUEUE):
        for name, value, low in (("max_batch_tokens", max_batch_tokens, 1), ("max_queue", max_queue, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise OptionError(f"{name}: expected an int >= {low}, got {value!r}")
        if not max_wait_ms >= 0:
            raise OptionError(f"max_wait_ms: expected a number >= 0, got {max_wait_ms!r}")
        self.translator = translator
        self.max_batch_tokens, self.max_wait, self.max_queue = max_batch_tokens, max_wait_ms / 1000, max_queue
        self._queue: collections.deque[_Request] = collections.deque()
        self._lock = threading.Condition()
        self._running = 0  # requests being decoded
        self._closed = False
        self._recent = collections.deque(maxlen=RECENT_BATCHES)  # (requests, sentences) of recent batches
        self._workers = [threading.Thread(target=self._work, args=(replica,), name=f"batcher-{i}", daemon=True)
                         for i, replica in enumerate(translator.replicas)]
        for worker in self._workers:
            worker.start()

    def submit(self, texts, options: DecodingOptions | None = None, **kwargs) -> Future:
        """Queues `texts`; the future's result is their `translate_batch` list.

        Its sentences are decoded in batches of at most `max_batch_tokens` padded tokens, whatever its
        options' batch_size.

        Raises (at once, for this request alone): OptionTypeError / OptionError as `translate_batch`
        (bad texts or options), QueueFull when `max_queue` requests wait already.
        """
        encoded, options = self.translator.encode(texts, options, kwargs)
        options = _batched_options(options, self.max_batch_tokens)
        request = _Request(encoded, options, Future(), time.monotonic(), self.translator.longest(encoded),
                           len(encoded.sources))
        with self._lock:
            if self._closed:
                raise QueueFull("the translator is closed")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are waiting (max_queue {self.max_queue}); retry later")
            self._queue.append(request)
            self._lock.notify()
        return request.future


    def translate_batch(self, texts, options: DecodingOptions | None = None, **kwargs) -> list:
        """`submit(...).result()`: the Translator's call, batched with whatever else is in flight."""
        return self.submit(texts, options, **kwargs).result()

    def stats(self) -> dict:
        """Queue depth, requests being decoded, and the sizes (requests, sentences) of recent batches."""
        with self._lock:
            return {"queued_requests": len(self._queue),
                    "queued_sentences": sum(request.sentences for request in self._queue),
                    "running_requests": self._running, "replicas": len(self._workers),
                    "recent_batches": [{"requests": r, "sentences": s} for r, s in self._recent]}

    def close(self) -> None:
        """Stops the workers after the batches they run; waiting requests fail with QueueFull."""
        with self._lock:
            self._closed = True
            waiting, self._queue = list(self._queue), collections.deque()
            self._lock.notify_all()
        for request in waiting:
            request.future.set_exception(QueueFull("the translator was closed"))
        for worker in self._workers:
            worker.join(timeout=60)

    # --- the workers --------------------------------------------------------------------------

    def _work(self, replica) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._decode(replica, batch)
            finally:
                with self._lock:
                    self._running -= len(batch)

    def _take(self) -> list[_Request] | None:
        """The next batch: the oldest request and those that can share its search (None: closed)."""
        with self._lock:
            while True:
                if self._closed:
                    return None
                if self._queue:
                    wait = self._queue[0].arrived + self.max_wait - time.monotonic()
                    if self._running == 0 or wait <= 0 or self._fills_a_batch():
                        break
                    self._lock.wait(wait)
                else:
                    self._lock.wait()
            first = self._queue.popleft()
            batch, longest, rows = [first], first.longest, first.sentences
            for request in list(self._queue):
                if request.options != first.options:
                    continue
                if (rows + request.sentences) * max(longest, request.longest) > self.max_batch_tokens:
                    break
                self._queue.remove(request)
                batch.append(request)
                longest, rows = max(longest, request.longest), rows + request.sentences
            self._running += len(batch)
            self._recent.append((len(batch), rows))
            return batch

    def _fills_a_batch(self) -> bool:
        """True when the waiting requests with the oldest one's options already fill a batch."""
        first = self._queue[0]
        same = [request for request in self._queue if request.options == first.options]
        rows, longest = sum(r.sentences for r in same), max(r.longest for r in same)
        return rows * longest >= self.max_batch_tokens

    def _decode(self, replica, batch: list[_Request]) -> None:
        futures = [request.future for request in batch if request.future.set_running_or_notify_cancel()]
        live = [request for request in batch if request.future in futures]
        if not live:
            return
        try:
            results = self.translator.decode([request.encoded for request in live], live[0].options, replica)
        except Exception:  # noqa: BLE001  (retried alone: only the request at fault fails)
            for request in live:
                try:
                    (result,) = self.translator.decode([request.encoded], request.options, replica)
                    request.future.set_result(result)
                except Exception as error:  # noqa: BLE001
                    request.future.set_exception(error)
            return
        for request, result in zip(live, results, strict=True):
            request.future.set_result(result)


@functools.lru_cache(maxsize=256)
def _batched_options(options: DecodingOptions, max_batch_tokens: int) -> DecodingOptions:
    """Batches are the batcher's: a request's own batch_size does not keep it from sharing a search.
    Cached per option set (module-level: a cache on the method would keep every batcher alive)."""
    return dataclasses.replace(options, batch_type="tokens", batch_size=max_batch_tokens)
