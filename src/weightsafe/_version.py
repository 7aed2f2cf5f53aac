"""The release number, in a module of its own so that anything (the HTTP User-Agent, the CLI's
``--version``) can read it without importing the package root and everything it pulls in."""

__version__ = "0.1.0"
