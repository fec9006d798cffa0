"""Verification: gather facts (evidence, claims, the pack, the log, a rebuild), run the rules, return a Verdict.

* ``result``  the Verdict
* ``gather``  every fact a rule reads (all the I/O of a verification)
* ``rebuild`` re-quantize the source and compare
* ``api``     verify / gate / check_pack / prepare: the one pipeline for every way it is asked

Importing the package imports none of them (the facade imports it first so that ``uc_attest.verify``
stays the function; the modules load when a verification runs).
"""
