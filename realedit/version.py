"""realedit's version (pyproject.toml holds the same): a module of its own, so what needs only
the version (the CLI's --version, the server's OpenAPI page) does not import the package face."""
__version__ = "0.1.0"
