"""Audit: a model's entries in the log as a chain of custody, the inventory of every release, the HTML report.

* ``collect``   entries about a model (the log's index, or a scan), each verified
* ``events``    one entry verified into an AuditEvent (what it claims, who signed, problems)
* ``custody``   the audit of one pack / root / digest
* ``inventory`` every release grouped by source model, with status
* ``report``    self-contained HTML (every untrusted field escaped)

Importing the package imports none of them (see ``verify/__init__.py``).
"""
