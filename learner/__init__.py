"""The learner sidecar: turns logged interactions and feedback into better routing,
a reward model and better local adapters. It reads and writes only through the store
and imports shared code from `gateway` (never the other way round).

Its jobs land with the learner issues; this package is where they live.
"""
