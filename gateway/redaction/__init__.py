"""Applying PII decisions to requests and answers: mask with reversible placeholders,
redact, hash or block, on every text field of every endpoint, and restore masked
values in the answer the user receives (streaming included)."""
