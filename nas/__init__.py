"""nas: neural architecture search on Optuna with a shared SQL study store.

Importing this package is cheap: torch, optuna and ray are imported lazily by the
modules that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
