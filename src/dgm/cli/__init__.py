"""The ``dgm`` command: one module per verb group (``train``, ``evaluate``, ``tasks``,
``latent``, ``compress``, ``report``), ``common`` for what they share, ``parser`` for the
parser and the error layer. Each verb parses, calls the library and prints."""

from dgm.cli.parser import main

__all__ = ["main"]
