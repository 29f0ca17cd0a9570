"""LoRA adapters: the registry in the store (`registry`), each gateway process's copy of
it (`index`), and model names with an adapter turned into routes (`resolve`).

Importing this package loads only the registry (pydantic and the store protocol), so
the local model worker and the learner can use it without the gateway's web stack.
"""

from gateway.adapters.registry import (
    NAMESPACE,
    AdapterExists,
    AdapterNotFound,
    AdapterRecord,
    RegistryError,
    Status,
    TransitionError,
    adapter_id,
    approve,
    find,
    get,
    list_adapters,
    parse_id,
    promote,
    register,
    retire,
    rollback,
)

__all__ = [
    "NAMESPACE",
    "AdapterExists",
    "AdapterNotFound",
    "AdapterRecord",
    "RegistryError",
    "Status",
    "TransitionError",
    "adapter_id",
    "approve",
    "find",
    "get",
    "list_adapters",
    "parse_id",
    "promote",
    "register",
    "retire",
    "rollback",
]
