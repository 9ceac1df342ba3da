"""`python -m movierec …` is the `movierec` command."""

from movierec.cli import main

main()
