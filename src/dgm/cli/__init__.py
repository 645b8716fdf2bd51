"""The ``dgm`` command: one module per verb group (``train``, ``evaluate``, ``tasks``,
``latent``, ``compress``, ``report``), ``common`` for what they share, ``main`` for the
parser and the error layer. Each verb parses, calls the library and prints."""

from dgm.cli.main import main

__all__ = ["main"]
