"""``python -m nascli`` runs the command line."""

from nascli.cli import main

main()
