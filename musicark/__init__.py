"""musicark: build, verify and distribute music preservation archives."""

__version__ = "0.1.0.dev0"
