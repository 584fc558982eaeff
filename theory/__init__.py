"""Pure, deterministic theory of self-distillation as label averaging.

No randomness, no I/O, no plotting: closed forms, Gram eigen-analysis and conditions.
"""
