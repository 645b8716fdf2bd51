"""``python -m dgm`` is the ``dgm`` command (torchrun launches it this way)."""

if __name__ == "__main__":
    from dgm.cli import main

    raise SystemExit(main())
