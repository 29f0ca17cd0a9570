"""Training jobs for local LoRA adapters: SFT, GRPO (PPO-style RL) and KTO.

Heavy imports (torch, transformers, TRL, MLflow): only the learner's job runner imports
this package, never the gateway.
"""
