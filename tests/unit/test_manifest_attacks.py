"""Attacks on the manifest a pack is held to (``manifest.py``): its Merkle leaves and root, the records it commits
(source signature, calibration), the proofs it hands out, the untrusted JSON it is read from, and the diff that
names every tensor that is not the expected one. Each test is a way a one-line slip would let a changed tensor,
a forged record or a hostile manifest through (found by mutation testing, docs/mutation.md). Pure data, no pack."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from uc_attest.core import merkle
from uc_attest.core.digest import Digest, canonical_json
from uc_attest.errors import Finding, MalformedPack, MerkleError
from uc_attest.manifest import (
    CALIBRATION_METHODS,
    MANIFEST_FORMAT,
    SOURCE_SIGNATURE_NAME,
    CalibrationRecord,
    Manifest,
    OmsMethod,
    SourceSignature,
    TensorEntry,
    compute_root,
    diff_tensors,
    moments_digest_of,
)
from uc_attest.quant.records import QuantRecord
from uc_attest.quant.scheme import DEFAULT_SCHEME

D1, D2, D3 = Digest("11" * 32), Digest("22" * 32), Digest("33" * 32)


def _entry(name: str, digest: Digest = D1, dtype: str = "BF16", shape: tuple[int, ...] = (2, 3),
           quant: QuantRecord | None = None, file: str = "model.safetensors") -> TensorEntry:  # fmt: skip
    return TensorEntry(name, dtype, shape, digest, D3, file, quant)


def _manifest(**kw: Any) -> Manifest:
    q = QuantRecord(5, 128, -7, True, Digest("44" * 32), 1234)
    tensors = kw.pop("tensors", [_entry("b.weight", D2, quant=q), _entry("a.bias", D1, "F32", (3,)), _entry("c", D3)])
    return Manifest(DEFAULT_SCHEME.to_dict(), tensors, files={"model.safetensors": D1, "config.json": D2},
                    source_files={"src/model.safetensors": D3}, **kw)  # fmt: skip


SIG = SourceSignature(
    SOURCE_SIGNATURE_NAME, D1, OmsMethod.SIGSTORE, "vendor@x", "https://issuer", "vendor/model", D2, 1_700_000_000
)
CAL = CalibrationRecord("self-sampled", {"seed": 0, "samples": 64}, "uc-attest 1.0", Digest("55" * 32))


# -- the Merkle leaf and root: what a signature over the root vouches for ------------------------------------------


def test_a_tensors_leaf_commits_its_name_dtype_shape_and_digest() -> None:
    """The leaf is JCS({"digest","dtype","name","shape"}) under the RFC 6962 leaf prefix: a tensor renamed,
    reinterpreted (same bytes read as another dtype or shape) or changed is another leaf, hence another root."""
    e = _entry("w", D1, "BF16", (2, 3))
    want = b'{"digest":"sha256:' + b"11" * 32 + b'","dtype":"BF16","name":"w","shape":[2,3]}'
    assert e.leaf_data() == want
    assert e.leaf_hash() == hashlib.sha256(b"\x00" + want).digest() == merkle.leaf_hash(want)
    others = [_entry("v", D1, "BF16", (2, 3)), _entry("w", D2, "BF16", (2, 3)), _entry("w", D1, "F16", (2, 3)),
              _entry("w", D1, "BF16", (3, 2))]  # fmt: skip
    assert len({e.leaf_hash(), *(o.leaf_hash() for o in others)}) == 5
    # the informative fields are not in the leaf (they are covered by whoever signs the whole manifest)
    assert _entry("w", quant=QuantRecord(5, 128, 0), file="other.safetensors").leaf_data() == want


def test_the_root_is_over_the_tensors_in_utf8_name_order_whatever_order_they_are_listed_in() -> None:
    """The root is MTH of the leaves sorted by UTF-8 name: a manifest listing the same tensors in another order has
    the same root, and one with a tensor more, less or changed has another."""
    es = [_entry("é", D1), _entry("b", D2), _entry("a", D3), _entry("z", D1)]
    leaves = [e.leaf_hash() for e in sorted(es, key=lambda e: e.name.encode())]
    assert compute_root(es) == compute_root(es[::-1]) == Digest(merkle.root_from_leaf_hashes(leaves).hex())
    assert compute_root(es[:3]) != compute_root(es) != compute_root([*es[:3], _entry("z", D2)])
    m = _manifest(tensors=es)
    assert m.root == compute_root(es) and m.to_dict()["root"] == str(m.root)
    assert [t["name"] for t in m.to_dict()["tensors"]] == ["a", "b", "z", "é"]


def test_an_inclusion_proof_of_a_tensor_proves_that_tensor_under_the_root() -> None:
    """``prove``: the index in name order, the tree size, the exact leaf text and an audit path that verifies
    against the manifest's root (and not for another tensor's leaf); a name not in the manifest has no proof."""
    m = _manifest(tensors=[_entry(n, d) for n, d in (("d", D1), ("b", D2), ("a", D3), ("c", D1), ("e", D2))])
    for i, name in enumerate("abcde"):
        p = m.prove(name)
        assert (p["name"], p["index"], p["size"], p["root"]) == (name, i, 5, str(m.root))
        e = m.entry(name)
        assert e is not None and p["leaf"] == e.leaf_data().decode()
        path = [bytes.fromhex(h) for h in p["proof"]]
        merkle.verify_inclusion(i, 5, merkle.leaf_hash(p["leaf"].encode()), path, m.root.raw)
        with pytest.raises(MerkleError):
            merkle.verify_inclusion(i, 5, _entry(name, D3 if e.digest != D3 else D1).leaf_hash(), path, m.root.raw)
    with pytest.raises(KeyError):
        m.prove("f")


def test_a_tensor_is_looked_up_by_its_exact_name() -> None:
    m = _manifest()
    assert m.entry("a.bias") is m.tensors[1] and m.entry("b.weight") is m.tensors[0]
    assert m.entry("a") is None and m.entry("A.BIAS") is None


# -- what a reconstruction is held to (diff_tensors) ---------------------------------------------------------------


def test_every_tensor_that_is_not_the_expected_one_is_a_finding_with_what_was_expected_and_found() -> None:
    """A tensor missing, reinterpreted (dtype or shape), changed or added: each is named, in name order, with the
    expected and the actual value; a pack that reconstructs exactly has no finding."""
    m = _manifest(tensors=[_entry("a", D1), _entry("b", D1), _entry("c", D1), _entry("d", D1), _entry("e", D1)])
    exact = {e.name: e for e in m.tensors}
    assert diff_tensors(m, exact) == []
    actual = dict(exact)
    del actual["a"]
    actual["b"] = _entry("b", D1, "F16")
    actual["c"] = _entry("c", D1, shape=(3, 2))
    actual["d"] = _entry("d", D2)
    actual["zz"] = _entry("zz", D3)
    actual["f"] = _entry("f", D2)
    assert diff_tensors(m, actual) == [
        Finding("a", "missing from pack", str(D1), None),
        Finding("b", "dtype/shape differs", "BF16[2, 3]", "F16[2, 3]"),
        Finding("c", "dtype/shape differs", "BF16[2, 3]", "BF16[3, 2]"),
        Finding("d", "reconstructed digest differs", str(D1), str(D2)),
        Finding("f", "not in manifest (added tensor)", None, str(D2)),
        Finding("zz", "not in manifest (added tensor)", None, str(D3)),
    ]
    # a reinterpreted tensor is one finding (its digest is not compared again), listed in UTF-8 name order
    both = diff_tensors(_manifest(tensors=[_entry("é", D1), _entry("z", D1)]),
                        {"é": _entry("é", D2, "F16"), "z": _entry("z", D1)})  # fmt: skip
    assert both == [Finding("é", "dtype/shape differs", "BF16[2, 3]", "F16[2, 3]")]
    order = diff_tensors(_manifest(tensors=[_entry("é", D1), _entry("z", D1), _entry("a", D1)]), {})
    assert [f.subject for f in order] == ["a", "z", "é"]


# -- the committed calibration moments and how they were obtained ----------------------------------------------------


def test_the_moments_digest_covers_every_committed_moments_tensor_by_name() -> None:
    """CalibrationRecord.moments is sha256(JCS({tensor: moments digest})) of every tensor that commits moments:
    a record made for other moments (one more, one less, one changed, or the same under another tensor's name)
    does not match."""
    q1, q2 = QuantRecord(5, 128, 0, True, D1), QuantRecord(5, 128, 0, True, D2)
    es = [_entry("a", quant=q1), _entry("b", quant=q2), _entry("c", quant=QuantRecord(5, 128, 0)), _entry("d")]
    want = Digest(hashlib.sha256(canonical_json({"a": str(D1), "b": str(D2)})).hexdigest())
    assert moments_digest_of(es) == want
    assert moments_digest_of([]) == Digest(hashlib.sha256(b"{}").hexdigest())
    assert moments_digest_of(es[:1]) != want
    assert moments_digest_of([_entry("a", quant=q2), _entry("b", quant=q1)]) != want
    assert moments_digest_of([_entry("a", quant=q1), _entry("x", quant=q2)]) != want


def test_a_calibration_record_is_read_back_exactly_or_refused() -> None:
    """The record a release claim carries is compared field by field (method, moments): it reads back as written,
    and a record with an unknown method, params that are not an object, a tool that is not text, a moments value
    that is no digest, or a missing field is refused, never read as something else."""
    d = CAL.to_dict()
    assert d == {"method": "self-sampled", "params": {"seed": 0, "samples": 64}, "tool": "uc-attest 1.0",
                 "moments": str(Digest("55" * 32))}  # fmt: skip
    assert CalibrationRecord.from_dict(d, "m") == CAL
    bare = CalibrationRecord("text-file", {}, "t")
    assert bare.to_dict() == {"method": "text-file", "params": {}, "tool": "t"}
    assert CalibrationRecord.from_dict(bare.to_dict(), "m") == bare
    for method in CALIBRATION_METHODS:
        assert CalibrationRecord.from_dict({**d, "method": method}, "m").method == method
    for bad in ({**d, "method": "guessed"}, {**d, "params": []}, {**d, "tool": 1}, {**d, "moments": "ab"},
                {k: v for k, v in d.items() if k != "method"}, {k: v for k, v in d.items() if k != "params"},
                {k: v for k, v in d.items() if k != "tool"}, [], None, {**d, "moments": 5}):  # fmt: skip
        with pytest.raises(MalformedPack, match="m: manifest field calibration is invalid") as exc:
            CalibrationRecord.from_dict(bad, "m")
        assert exc.value.data.get("field") == "calibration", bad


# -- the verified signature of the source model ------------------------------------------------------------------


def test_a_source_signature_record_is_read_back_exactly_or_refused_naming_the_field() -> None:
    """Who signed the source model (method, identity, issuer), the signed model and its root, the signature file
    kept in the pack and when: each reads back as written; a field missing or of another type, a ``signed_at``
    that is a bool or text, or a signature file outside the pack is refused naming that field."""
    d = SIG.to_dict()
    assert d == {"file": SOURCE_SIGNATURE_NAME, "sha256": str(D1), "method": "sigstore", "identity": "vendor@x",
                 "issuer": "https://issuer", "model": "vendor/model", "root": str(D2), "signed_at": 1_700_000_000}  # fmt: skip
    assert SourceSignature.from_dict(d, "m") == SIG
    keyed = SourceSignature(SOURCE_SIGNATURE_NAME, D2, OmsMethod.KEY, "sha256:" + "ab" * 32, "", "m", D3)
    assert "signed_at" not in keyed.to_dict() and SourceSignature.from_dict(keyed.to_dict(), "m") == keyed
    assert SourceSignature.from_dict({**d, "signed_at": None}, "m").signed_at is None
    for field in ("file", "method", "identity", "issuer", "model", "sha256", "root"):
        for value in (None, 5, *(["password"] if field == "method" else [])):  # a method is one OmsMethod names
            with pytest.raises(MalformedPack, match=f"manifest field source_signature.{field} is missing") as exc:
                SourceSignature.from_dict({**d, field: value}, "m")
            assert exc.value.data.get("field") == f"source_signature.{field}"
    for field, value in (("sha256", "sha256:zz"), ("root", "11" * 32), ("signed_at", True), ("signed_at", "1"),
                         ("signed_at", 1.5), ("file", "../model.sig"), ("file", "/etc/passwd"), ("file", ""),
                         ("file", "config.json"), ("file", "sigs/model.sig")):  # fmt: skip
        with pytest.raises(MalformedPack, match=f"source_signature.{field} is missing or invalid"):
            SourceSignature.from_dict({**d, field: value}, "m")
    for bad in ([], "x", None):
        with pytest.raises(MalformedPack, match="manifest field source_signature is missing or invalid") as exc:
            SourceSignature.from_dict(bad, "m")
        assert exc.value.data.get("field") == "source_signature"
    assert SourceSignature.from_dict({**d, "signed_at": 0}, "m").signed_at == 0


# -- the manifest as written and as read from an untrusted pack -----------------------------------------------------


def test_a_manifest_is_written_canonically_and_reads_back_as_the_same_manifest() -> None:
    """``uc-manifest.json`` is the JCS of every field (format, root, scheme, files and tensors in order, the
    records when present): what is signed is what is read back, and nothing is dropped on the way."""
    m = _manifest(source_signature=SIG, calibration=CAL)
    d = m.to_dict()
    assert list(d) == ["format", "root", "scheme", "files", "source_files", "tensors", "source_signature",
                       "calibration"]  # fmt: skip
    assert d["format"] == MANIFEST_FORMAT == "uc-manifest/1" and d["root"] == str(m.root)
    assert d["scheme"] == DEFAULT_SCHEME.to_dict()
    assert list(d["files"].items()) == [("config.json", str(D2)), ("model.safetensors", str(D1))]
    assert d["source_files"] == {"src/model.safetensors": str(D3)}
    assert d["tensors"][0] == {"name": "a.bias", "dtype": "F32", "shape": [3], "digest": str(D1),
                               "source_digest": str(D3), "file": "model.safetensors", "quant": None}  # fmt: skip
    assert d["tensors"][1]["quant"] == {"bits": 5, "group_size": 128, "exponent": -7, "rel_err_ppm": 1234,
                                        "moments": str(Digest("44" * 32))}  # fmt: skip
    assert d["source_signature"] == SIG.to_dict() and d["calibration"] == CAL.to_dict()
    assert m.to_json() == canonical_json(d)
    back = Manifest.from_json(m.to_json(), "m")
    assert back.root == m.root and back.to_json() == m.to_json()
    assert back == Manifest(m.scheme, sorted(m.tensors, key=lambda e: e.name), m.files, m.source_files, SIG, CAL)
    plain = _manifest()
    assert "source_signature" not in plain.to_dict() and "calibration" not in plain.to_dict()
    again = Manifest.from_json(plain.to_json(), "m")
    assert again.to_json() == plain.to_json() and again.source_signature is None and again.calibration is None


def _doc(**changes: Any) -> dict[str, Any]:
    d = json.loads(_manifest(source_signature=SIG, calibration=CAL).to_json())
    d.update(changes)
    return d


def _read(doc: Any) -> Manifest:
    return Manifest.from_json(json.dumps(doc).encode(), "pack/uc-manifest.json")


def _refused(doc: Any, field: str | None, match: str | None = None) -> None:
    with pytest.raises(MalformedPack, match=match) as exc:
        _read(doc)
    assert exc.value.data.get("path") == "pack/uc-manifest.json"
    assert exc.value.data.get("field") == field, (exc.value.data, doc)


def _tensor(i: int, **changes: Any) -> dict[str, Any]:
    d = _doc()
    d["tensors"][i] = {**d["tensors"][i], **changes}
    return d


def test_a_manifest_of_another_format_or_with_a_scheme_that_is_not_one_is_refused() -> None:
    """The format tag and a scheme the rebuild and loaders can use are checked before anything is read from it."""
    assert _read(_doc()).root == _manifest().root
    _refused(_doc(format="uc-manifest/2"), "format", "manifest field format is missing or invalid")
    _refused([_doc()], "format")
    _refused({k: v for k, v in _doc().items() if k != "format"}, "format")
    _refused(_doc(scheme=[]), "scheme", "manifest field scheme is missing or invalid")
    _refused({k: v for k, v in _doc().items() if k != "scheme"}, "scheme")
    _refused(_doc(scheme={**DEFAULT_SCHEME.to_dict(), "bits": "5"}), "scheme", "manifest field scheme is invalid")
    _refused(_doc(scheme={**DEFAULT_SCHEME.to_dict(), "bits": 99}), "scheme", "manifest field scheme is invalid")
    _refused(_doc(tensors={}), "tensors", "manifest field tensors is missing or invalid")
    _refused({k: v for k, v in _doc().items() if k != "tensors"}, "tensors")


def test_a_manifest_naming_a_file_outside_the_pack_or_with_a_bad_file_digest_is_refused() -> None:
    """``files`` / ``source_files`` keys are joined to the pack or source directory: an absolute path, a '..',
    an empty part is refused before any file is opened (issue 28, finding 3), as is a value that is no digest."""
    for key in ("files", "source_files"):
        for name in ("/etc/hostname", "../../etc/passwd", "a//b", "", "./a", "a\\b"):
            _refused(_doc(**{key: {name: str(D1)}}), key, f"manifest field {key} names an unsafe file")
        _refused(_doc(**{key: {"model.safetensors": "11" * 32}}), key, f"manifest field {key} holds a bad digest")
        _refused(_doc(**{key: {"model.safetensors": 5}}), key, "holds a bad digest for 'model.safetensors'")
        _refused(_doc(**{key: []}), key, f"manifest field {key} is missing or invalid")
        absent = _read({k: v for k, v in _doc().items() if k != key})
        assert getattr(absent, key) == {}
    assert _read(_doc(files={"sub/dir/x.bin": str(D2)})).files == {"sub/dir/x.bin": D2}


def test_a_tensor_entry_that_is_malformed_duplicated_or_outside_the_pack_is_refused_naming_it() -> None:
    """Each tensor entry: an object with a text name and dtype, a shape of unsigned 64-bit dimensions (no bool,
    no negative), a name not seen before (a duplicate would let one entry hide another), a file inside the pack,
    a readable quant record and digests; the refusal names ``tensors[i]`` and the field."""
    cases: list[tuple[dict[str, Any], str]] = [
        (_tensor(1, name=5), "tensors[1]"), (_tensor(1, dtype=None), "tensors[1]"),
        (_doc(tensors=[_doc()["tensors"][0], "x"]), "tensors[1]"),
        (_tensor(0, shape=[2, -1]), "tensors[0].shape"), (_tensor(0, shape=[True]), "tensors[0].shape"),
        (_tensor(0, shape=[1 << 64]), "tensors[0].shape"),
        (_tensor(0, shape="2"), "tensors[0].shape"),
        (_tensor(2, name=_doc()["tensors"][0]["name"]), "tensors[2].name (duplicate 'a.bias')"),
        (_tensor(1, file=5), "tensors[1].file"),
        (_tensor(1, file="../x.safetensors"), "tensors[1].file (unsafe file name)"),
        (_tensor(1, file="/x.safetensors"), "tensors[1].file (unsafe file name)"),
        (_tensor(1, quant={"bits": "5", "group_size": 128, "exponent": 0}), "tensors[1].quant"),
        (_tensor(1, quant=[]), "tensors[1].quant"),
        (_tensor(1, digest="11" * 32), "tensors[1]"), (_tensor(1, source_digest=None), "tensors[1]"),
    ]  # fmt: skip
    for doc, field in cases:
        _refused(doc, field)
    _refused(_tensor(1, digest="x"), "tensors[1]", r"manifest tensors\[1\] \('b.weight'\) has a bad digest")
    _refused(_tensor(1, quant=[]), "tensors[1].quant", r"manifest tensors\[1\] \('b.weight'\): quant must be")
    _refused(_tensor(2, name="b.weight"), "tensors[2].name (duplicate 'b.weight')",
             r"manifest field tensors\[2\].name \(duplicate 'b.weight'\) is missing or invalid")  # fmt: skip
    # the largest dimension and an absent file are accepted (the root still has to match: refused by the root)
    _refused(_tensor(0, shape=[(1 << 64) - 1, 0]), "root")
    no_file = _doc()
    del no_file["tensors"][0]["file"]
    m = _read(no_file)
    assert m.entry("a.bias") is not None and m.entry("a.bias").file == ""  # type: ignore[union-attr]
    no_quant = _doc()
    del no_quant["tensors"][0]["quant"]
    assert _read(no_quant).entry("a.bias").quant is None  # type: ignore[union-attr]


def test_a_manifest_whose_root_is_not_its_entries_root_is_refused() -> None:
    """The root written in the manifest must be the one its entries make: a signed root with swapped entries (or
    swapped digests) is refused, not read with the entries' own root."""
    d = _doc()
    d["tensors"][0]["digest"], d["tensors"][1]["digest"] = d["tensors"][1]["digest"], d["tensors"][0]["digest"]
    _refused(d, "root", "manifest root sha256:.* does not match its entries")
    _refused(_doc(root=None), "root")
    _refused({k: v for k, v in _doc().items() if k != "root"}, "root")
    _refused(_doc(root=str(D1)), "root")


def test_a_manifest_record_that_is_malformed_is_refused_not_dropped() -> None:
    """A source signature or calibration record that is present but malformed refuses the manifest (a rule
    would otherwise read "no record"); ``null`` is the same as absent."""
    _refused(_doc(source_signature={**SIG.to_dict(), "file": "../x"}), "source_signature.file")
    _refused(_doc(source_signature=[]), "source_signature")
    _refused(_doc(calibration={**CAL.to_dict(), "method": "x"}), "calibration")
    m = _read(_doc(source_signature=None, calibration=None))
    assert m.source_signature is None and m.calibration is None
    full = _read(_doc())
    assert full.source_signature == SIG and full.calibration == CAL


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not json", "manifest is not JSON uc-attest writes"),
        (b'{"a": 1.5}', "manifest is not JSON uc-attest writes"),
        (b'{"a": NaN}', "manifest is not JSON uc-attest writes"),
        (b'"\\ud800"', "manifest is not JSON uc-attest writes"),
        (b"\xff\xfe", "manifest is not JSON uc-attest writes"),
        (b"[" * 100_000 + b"]" * 100_000, "manifest nests too deeply"),
    ],
)
def test_a_manifest_that_is_not_json_uc_attest_writes_is_refused_as_malformed(data: bytes, match: str) -> None:
    """Floats, NaN, lone surrogates, invalid UTF-8 or nesting past the parser are a MalformedPack naming the file
    (never a crash, never a value RFC 8785 cannot write back under the same root)."""
    with pytest.raises(MalformedPack, match=match) as exc:
        Manifest.from_json(data, "pack/uc-manifest.json")
    assert exc.value.data.get("path") == "pack/uc-manifest.json" and "field" not in exc.value.data
