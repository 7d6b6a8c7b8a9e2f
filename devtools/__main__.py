"""`python -m devtools`."""

from devtools.cli import main

main()
