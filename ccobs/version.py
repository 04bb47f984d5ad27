"""ccobs's version, in a module of its own so that modules inside ccobs can read it
without importing the package's ``__init__`` (which imports them: a cycle)."""

__version__ = "0.1.0"
