"""Rule ids: the name of every check a verdict, a custody report or an audit can hold.

One ``StrEnum`` shared by the layers that produce checks (``evidence/`` names the rule a failing bundle
fails, ``policy/rules.py`` and ``audit/custody.py`` build checks, ``verify/`` renames none of them by text).
It lives in ``core/`` because ``core`` is the lowest package every producer and reader may import (the
``errors`` unit is one module; ``evidence/`` sits above ``policy/``). Being a ``str``, a member encodes as
its value in JSON and RFC 8785 and compares equal to it (``check.rule == "release.signer"``).
"""

from __future__ import annotations

from enum import StrEnum


class RuleId(StrEnum):
    # release evidence and its claim
    RELEASE_SIGNER = "release.signer"
    RELEASE_LOG = "release.log"
    RELEASE_TIMESTAMPS = "release.timestamps"
    RELEASE_MAX_AGE = "release.max_age"
    RELEASE_PREDICATE_TYPE = "release.predicate_type"
    RELEASE_STATEMENT = "release.statement"
    RELEASE_BUILD_TYPE = "release.build_type"
    RELEASE_BUILDER_ID = "release.builder_id"
    # transparency logs
    LOG_ONLINE = "log.online"
    LOG_CHECKPOINT = "log.checkpoint"
    LOG_CONSISTENCY = "log.consistency"
    # quantization and source constraints
    QUANTIZATION_SCHEME = "quantization.scheme"
    QUANTIZATION_BITS = "quantization.bits"
    QUANTIZATION_GROUP_SIZE = "quantization.group_size"
    QUANTIZATION_CALIBRATION = "quantization.calibration"
    SOURCE_DIGEST = "source.digest"
    SOURCE_SIGNERS = "source.signers"
    # the pack
    MANIFEST = "manifest"
    PACK_FILES = "pack.files"
    PACK_MANIFEST = "pack.manifest"
    PACK_TENSORS = "pack.tensors"
    PACK_MATCHES = "pack.matches"
    # rebuild from source
    REBUILD = "rebuild"
    REBUILD_SOURCE = "rebuild.source"
    REBUILD_MATCH = "rebuild.match"
    # validator attestations
    VALIDATION = "validation"
    # OpenSSF Model Signing
    OMS_SIGNATURE = "oms.signature"
    OMS_FILES = "oms.files"
    # OCI
    OCI_PULL = "oci.pull"
    # chain of custody
    CUSTODY_SOURCE = "custody.source"
    CUSTODY_RELEASE = "custody.release"
    CUSTODY_VALIDATION = "custody.validation"
    CUSTODY_UNATTRIBUTED = "custody.unattributed"
