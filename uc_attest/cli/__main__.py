"""``python -m uc_attest.cli``."""

from . import main

main()
