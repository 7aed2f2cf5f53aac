"""weightsafe: download model weights and prove they are intact and usable before serving."""

__version__ = "0.1.0"
