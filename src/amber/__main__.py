"""``python -m amber``: the same as the ``amber`` command."""

from amber.cli import main

main()
