"""Answers as plain data: the one JSON encoder and error shape, and header edits."""

from __future__ import annotations

from claw402.tenant_api.answer import Answer, error_answer, html_answer, json_answer


def test_the_error_shape_with_extra_fields_and_headers() -> None:
    answer = error_answer(202, "payment_pending", "r1", "later", headers={"Retry-After": "2"},
                          transaction=None)  # fmt: skip
    assert answer.status_code == 202
    assert answer.json() == {"ok": False, "error": "payment_pending", "requestId": "r1",
                             "detail": "later", "transaction": None}  # fmt: skip
    assert answer.header("retry-after") == "2"
    assert answer.header("Content-Type") == "application/json"
    assert json_answer({"ok": True}).body == b'{"ok":true}'


def test_set_headers_replaces_and_text_gets_a_charset() -> None:
    answer = Answer(200, b"a,b", {"X-One": "1"}, media_type="text/csv")
    answer.set_headers({"x-one": "2", "PAYMENT-RESPONSE": "abc"})
    assert answer.header_items() == [("content-type", "text/csv; charset=utf-8"),
                                     ("x-one", "2"), ("payment-response", "abc")]  # fmt: skip
    assert html_answer("<p>").header("content-type") == "text/html; charset=utf-8"
    assert Answer(200, media_type="text/csv; charset=latin-1").header("content-type") == (
        "text/csv; charset=latin-1"
    )
