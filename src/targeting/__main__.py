"""`python -m targeting`: the same command line as `targeting`."""

from targeting.cli import main

main()
