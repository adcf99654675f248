"""Whatever an editor types, a query compiles or is refused with a RuleError at a column
inside it: never another exception, never a caret that cannot be drawn, never a wait."""

from __future__ import annotations

import pytest

from rules import Document, RuleSetError, RuleSpec, compile_rules


@pytest.mark.parametrize("digits", ["9" * 5000, "1" + "0" * 4300, "٣" * 5000])
def test_a_near_distance_of_thousands_of_digits_is_out_of_range_not_a_crash(digits: str) -> None:
    # int() refuses strings of more than 4,300 digits with a plain ValueError.
    with pytest.raises(RuleSetError) as refused:
        compile_rules([RuleSpec("r", f"a NEAR/{digits} b")])
    error = refused.value.errors[0]
    assert (error.message, error.column) == ("NEAR distance must be between 1 and 1000", 3)


def test_leading_zeros_do_not_change_a_near_distance() -> None:
    ruleset = compile_rules([RuleSpec("r", "a NEAR/" + "0" * 5000 + "2 b")])
    assert [hit.rule for hit in ruleset.match(Document(title="a x b"))] == ["r"]
    assert ruleset.match(Document(title="a x y b")) == []
