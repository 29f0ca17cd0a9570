"""Tiny randomly initialised Llama models (with the SmolLM2 tokenizer) and LoRA adapters.

Fast enough for unit tests on two cores; the real SmolLM2 is kept for the one end-to-end
test. The tokenizer comes from the converted SmolLM2 cache (`flywheel local-model prepare`,
which `make` runs once).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from local_worker.model_files import resolve

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def build_tiny_model(out: Path, max_positions: int = 256, seed: int = 0) -> Path:
    source = resolve("smollm2-135m").path
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    return out


def build_adapter(model_dir: Path, out: Path, seed: int, r: int = 8, alpha: int = 16) -> Path:
    """A LoRA adapter with random (non-zero) weights, so its outputs differ from the base."""
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    config = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
    )  # fmt: skip
    get_peft_model(base, config).save_pretrained(str(out))
    return out
