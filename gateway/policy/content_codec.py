"""The prompt-content vector as an event carries it: `DIMS` float16 values, base64.

The router encodes a request's text once (gateway/policy/content.py), packs the vector
here, and both the bandit's context and the request's event carry the same packed string;
`featurize` unpacks it. So the bandit scores exactly what the learner later refits on,
without the prompt text (which a tenant may keep out of the logs). 32 float16 values are
64 bytes, 88 base64 characters per event.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import numpy.typing as npt

DIMS = 32  # the distilled static model's output size (PCA dims): part of FEATURES
_DTYPE = np.dtype("<f2")
_PACKED_CHARS = len(base64.b64encode(bytes(DIMS * _DTYPE.itemsize)))


def pack(vector: npt.ArrayLike) -> str:
    """`DIMS` finite numbers as base64 of little-endian float16."""
    values = np.asarray(vector, dtype=np.float64).reshape(-1)
    if values.shape != (DIMS,) or not np.isfinite(values).all():
        raise ValueError(f"a content vector is {DIMS} finite numbers, got shape {values.shape}")
    return base64.b64encode(values.astype(_DTYPE).tobytes()).decode("ascii")


def unpack(packed: str | None) -> npt.NDArray[np.float64] | None:
    """The vector `pack` wrote, as float64; None for a missing or malformed value (an older
    event, another writer): the caller treats it as "no content vector"."""
    if not packed or not isinstance(packed, str) or len(packed) != _PACKED_CHARS:
        return None
    try:
        raw = base64.b64decode(packed, validate=True)
    except (binascii.Error, ValueError):
        return None
    values = np.frombuffer(raw, dtype=_DTYPE).astype(np.float64)
    if values.shape != (DIMS,) or not np.isfinite(values).all():
        return None
    return values
