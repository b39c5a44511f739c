"""The served-vector log: a sample of what serving returned, for skew and drift checks.

A sampled vector is appended to a Redis Stream (`fh:served`, capped at about `maxlen` entries) after
its response went out, so logging never delays the caller. The HTTP app buffers sampled vectors and
writes them 100 at a time (or every 0.25 s), so logging every vector costs a fraction of a round trip
per request; a worker that dies loses at most its buffer, which for a sample is acceptable. `featurehouse skew` / `drift` land the
stream into the warehouse (idempotent by stream id) and trim what landed. A vector is logged with
values rendered exactly as the response rendered them, so the comparison is of what the model got.
"""

from __future__ import annotations

import queue
import random
import threading
from typing import Sequence

import orjson

from featurehouse.online.codec import to_micros
from featurehouse.serving.vectors import FeatureVector, json_default

SERVED_STREAM = "fh:served"
DEFAULT_MAXLEN = 1_000_000
RENDER = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def render_value(value) -> str:
    """A value as the HTTP response renders it (NaN/inf -> null, timestamps ISO-8601 Z, decimals as text)."""
    return orjson.dumps(value, default=json_default, option=RENDER).decode()


def log_entry(vector: FeatureVector, model: str | None) -> dict[str, bytes | str]:
    features = {name: [render_value(v.value), to_micros(v.event_time) if v.event_time else None, v.status, v.version]
                for name, v in vector.features.items()}
    return {"entity_type": vector.entity_type, "entity_id": vector.entity_id, "model": model or "",
            "served_at": str(to_micros(vector.served_at)), "features": orjson.dumps(features)}


class ServedLog:
    """Samples vectors into the served stream; `rate` 0 logs nothing, 1 logs every vector."""

    flush_size = 100
    flush_every_s = 0.25

    def __init__(self, rate: float, maxlen: int = DEFAULT_MAXLEN, rng: random.Random | None = None):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"log_sample_rate must be between 0 and 1, got {rate}")
        self.rate, self.maxlen = rate, maxlen
        self._random = (rng or random.Random()).random
        self._buffer: list[dict] = []
        self._writer: threading.Thread | None = None
        self._queue: queue.SimpleQueue[list[dict] | None] | None = None  # made with the writer thread

    def add(self, vectors: Sequence[FeatureVector], model: str | None) -> bool:
        """Buffer the sampled vectors' entries; True when the buffer is due to be flushed."""
        for v in self.sample(vectors):
            self._buffer.append(log_entry(v, model))
        return len(self._buffer) >= self.flush_size

    async def flush_async(self, client) -> int:
        entries, self._buffer = self._buffer, []
        if entries:
            async with client.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(SERVED_STREAM, entry, maxlen=self.maxlen, approximate=True)
                await pipe.execute()
        return len(entries)

    def sample(self, vectors: Sequence[FeatureVector]) -> list[FeatureVector]:
        if self.rate <= 0.0:
            return []
        if self.rate >= 1.0:
            return list(vectors)
        return [v for v in vectors if self._random() < self.rate]

    def flush(self, client) -> int:
        """The synchronous flush (redis-py)."""
        entries, self._buffer = self._buffer, []
        self._write(client, entries)
        return len(entries)

    def _write(self, client, entries: list[dict]) -> None:
        if entries:
            pipe = client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(SERVED_STREAM, entry, maxlen=self.maxlen, approximate=True)
            pipe.execute()

    def flush_in_background(self, client) -> None:
        """Hand the buffer to a writer thread (in-process SDK): the caller that filled the buffer does not
        wait for the write, so logging stays out of the caller's latency tail."""
        entries, self._buffer = self._buffer, []
        if not entries:
            return
        if self._writer is None:
            self._queue = queue.SimpleQueue()
            self._writer = threading.Thread(target=self._write_forever, args=(client,), name="featurehouse-served-log",
                                            daemon=True)
            self._writer.start()
        assert self._queue is not None
        self._queue.put(entries)

    def _write_forever(self, client) -> None:
        while True:
            assert self._queue is not None  # set before this thread started
            entries = self._queue.get()
            if entries is None:
                return
            try:
                self._write(client, entries)
            except Exception:  # noqa: BLE001 - a store error costs these samples, never a caller
                pass

    def close(self, client) -> None:
        """Write what is buffered and stop the writer thread."""
        if self._writer is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._writer.join(timeout=5)
            self._writer = None
        self.flush(client)

    def append(self, client, vectors: Sequence[FeatureVector], model: str | None) -> None:
        """Sample and write at once (tools and tests; serving buffers with `add`)."""
        self.add(vectors, model)
        self.flush(client)
