"""Subcommands of the ``facevision`` command line, one module each (see :mod:`facevision.cli`)."""
