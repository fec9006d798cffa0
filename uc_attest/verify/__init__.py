"""Verification: gather facts (evidence, claims, the pack, the log, a rebuild), run the rules, return a Verdict.

* ``result``  the Verdict
* ``gather``  every fact a rule reads (all the I/O of a verification)
* ``rebuild`` re-quantize the source and compare
* ``api``     verify / gate / check_pack: the one pipeline for every way it is asked
"""

from .api import check_pack, check_rebuild, default_bundle, gate, verify, verify_pack
from .result import Verdict

__all__ = ["Verdict", "check_pack", "check_rebuild", "default_bundle", "gate", "verify", "verify_pack"]
