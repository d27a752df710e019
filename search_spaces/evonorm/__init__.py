"""EvoNorm (Liu et al., NeurIPS 2020): normalization-activation layers as computation
graphs, searched by evolution with rejection protocols across several host networks."""

from search_spaces.evonorm.space import EvoNormSettings, EvoNormSpace

__all__ = ["EvoNormSettings", "EvoNormSpace"]
