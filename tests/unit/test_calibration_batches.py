"""Tokenized calibration batches (``calibration/collect.py`` ``text_batches``): a tokenizer without a pad token
(most causal LMs) is padded by uc-attest, and the attention mask keeps the padding out of the moments."""

from __future__ import annotations

from typing import Any


def test_text_batches_pad_a_tokenizer_without_a_pad_token() -> None:
    from uc_attest.calibration.collect import text_batches

    class NoPad:
        pad_token_id = None

        def __call__(self, texts: list[str], **kw: Any) -> dict[str, Any]:
            if kw.get("padding"):
                raise ValueError("Asking to pad but the tokenizer does not have a padding token.")
            return {"input_ids": [[1 + (ord(c) % 50) for c in t][: kw["max_length"]] for t in texts]}

    (b,) = text_batches(NoPad(), ["abc", "a", "abcdefgh"], max_length=5)
    assert b["input_ids"].shape == (3, 5) and b["attention_mask"].sum(1).tolist() == [1, 3, 5]  # by length
