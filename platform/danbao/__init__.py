"""Danbao (担保): a metadata-driven platform for financing-guarantee companies."""
__version__ = "0.1.0"
