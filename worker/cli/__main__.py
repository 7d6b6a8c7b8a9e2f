"""`python -m worker.cli` = `ringlog`."""

from worker.cli.main import main

main()
