"""The package version, kept in step with ``pyproject.toml`` (it is also sent to the server)."""

__version__ = "0.1.0"
