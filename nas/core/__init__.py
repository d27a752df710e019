"""The kernel: what search spaces, evaluators and the platform all stand on.

Errors, validation helpers, the data description (``DataSpec``), checkpoints and atomic
file writes, seeds and the random trial. Nothing here imports from the layers above
(``search_spaces``, ``evaluators``, or the rest of ``nas``); ``pyproject.toml``'s
import-linter contracts enforce that in CI. Every module is cheap to import: torch is
imported inside the functions that need it.
"""
