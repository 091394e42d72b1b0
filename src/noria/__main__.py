"""``python -m noria`` is the same as the ``noria`` command."""

from noria.cli import main

if __name__ == "__main__":
    main()
