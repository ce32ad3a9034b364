"""``python -m samprompt.train_tiny``: the built-in model's trainer (kept at this name for its commands).

The code lives in :mod:`samprompt.training.tiny`.
"""

from .training.tiny import main, package, train_step, validate

__all__ = ["main", "package", "train_step", "validate"]

if __name__ == "__main__":
    main()
