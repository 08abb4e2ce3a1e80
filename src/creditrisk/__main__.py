"""`python -m creditrisk` = the `creditrisk` command."""

from creditrisk.cli import main

main()
