"""Attaching checked LoRA adapters to the serving model and taking them off again.

Only this module touches PEFT's layers. An adapter (an `AdapterSpec`, already checked
against the base) is added under a PEFT-safe key (`peft_name`: served names may hold dots,
which PEFT's module dicts refuse), its tensors copied into the new LoRA layers. If anything
fails part way, the rollback takes the key off every LoRA layer and config by hand, and
the plain base model is restored when no adapter is left: it does not depend on
`delete_adapter`, whose behaviour has changed between PEFT and transformers releases.
Nothing here ever writes to a base model weight.
"""

from __future__ import annotations

import gc
import hashlib
from typing import Any, cast

import torch
from peft import LoraConfig, PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer

from local_worker.adapter_files import PREFIX, AdapterSpec

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class AttachError(Exception):
    """Attaching failed; `model` is the model to keep serving with (as it was before)."""

    def __init__(self, message: str, model: Any) -> None:
        super().__init__(message)
        self.model = model


def peft_name(served: str) -> str:
    """The adapter's key inside PEFT: stable, free of dots, never PEFT's own names."""
    return "fw_" + hashlib.sha256(served.encode()).hexdigest()[:16]


def base_of(model: Any) -> Any:
    """The transformers model under PEFT's wrappers (LoRA layers in it, if attached)."""
    return model.base_model.model if isinstance(model, PeftModel) else model


def has_adapters(model: Any) -> bool:
    return isinstance(model, PeftModel) and bool(model.peft_config)


def linear_layers(model: Any) -> dict[str, tuple[int, int]]:
    """name -> (in_features, out_features) of the base's linear layers adapters may target:
    every `nn.Linear` but the output embedding (lm_head), seen through LoRA wrappers."""
    base = base_of(model)
    output = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    found: dict[str, tuple[int, int]] = {}
    for name, module in base.named_modules():
        if ".base_layer" in name or ".lora_" in name:
            continue
        layer = module.get_base_layer() if isinstance(module, BaseTunerLayer) else module
        if type(layer) is torch.nn.Linear and layer is not output:
            found[name] = (layer.in_features, layer.out_features)
    return found


def attach(model: Any, served: str, spec: AdapterSpec) -> Any:
    """The serving model with the adapter added; AttachError (model unchanged) if not."""
    key = peft_name(served)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=cast(int, spec.alpha),  # typed int, used as alpha / r: a float is fine
        use_rslora=spec.use_rslora,
        target_modules=list(spec.modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        inference_mode=True,
    )
    wrapped = isinstance(model, PeftModel)
    if wrapped and key in model.peft_config:
        raise AttachError("an adapter by that name is already attached", model)
    base = base_of(model)
    try:
        if wrapped:
            model.add_adapter(key, config)
            peft = model
        else:
            peft = PeftModel(base, config, adapter_name=key)
        _copy_weights(base, key, spec)
        peft.eval()
    except Exception as exc:  # PEFT raises many kinds; every one means "roll back"
        _strip(base, key, unwrap=not wrapped)
        if wrapped:
            model.peft_config.pop(key, None)
        gc.collect()  # the half-built layers sit in reference cycles with the traceback
        raise AttachError(f"{type(exc).__name__}: {exc}", model) from exc
    return peft


def detach(model: Any, served: str) -> Any:
    """The serving model without the adapter: the plain base once none is left."""
    if not isinstance(model, PeftModel):
        return model
    key = peft_name(served)
    model.peft_config.pop(key, None)
    base = base_of(model)
    if not model.peft_config:
        _strip(base, key, unwrap=True)
        return base
    _strip(base, key, unwrap=False)
    if key in model.active_adapters:  # PEFT would keep pointing at the deleted adapter
        model.set_adapter(next(iter(model.peft_config)), inference_mode=True)
    return model


def _copy_weights(base: Any, key: str, spec: AdapterSpec) -> None:
    with torch.no_grad():
        for name, tensor in spec.tensors.items():
            module_name, _, part = name.removeprefix(PREFIX).rpartition(".lora_")
            layer = base.get_submodule(module_name)
            target = (layer.lora_A if part.startswith("A") else layer.lora_B)[key].weight
            target.copy_(tensor)
            target.requires_grad_(False)


def _strip(base: Any, key: str, unwrap: bool) -> None:
    """Take `key` off every LoRA layer; with `unwrap`, put the plain layers back."""
    for name, module in list(base.named_modules()):
        if not isinstance(module, BaseTunerLayer):
            continue
        for attr in (*module.adapter_layer_names, *module.other_param_names):
            store = getattr(module, attr, None)
            if isinstance(store, dict | torch.nn.ModuleDict | torch.nn.ParameterDict):
                if key in store:
                    del store[key]
        if unwrap:
            parent_name, _, child = name.rpartition(".")
            parent = base.get_submodule(parent_name) if parent_name else base
            setattr(parent, child, module.get_base_layer())
    if unwrap and "peft_config" in vars(base):  # PEFT's copy; a new wrapper would reuse it
        del base.peft_config
