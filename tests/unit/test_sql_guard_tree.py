"""Reading `EXPLAIN AST` text: a line forged through an identifier never goes unnoticed."""

from __future__ import annotations

import pytest

from lib.tinybird_local.sql_guard import SQLRefused, _nodes

REAL = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Literal UInt64_1 (alias x)
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function url (alias u) (children 1)
       ExpressionList (children 1)
        Literal 'http://x'
"""


def test_real_tree_gives_kinds_details_and_parents():
    nodes = _nodes(REAL)
    function = next(n for n in nodes if n.kind == "Function")
    assert (function.detail, function.parent, function.depth) == ("url", "TableExpression", 6)
    assert nodes[4].detail == "UInt64_1"


@pytest.mark.parametrize("forged", [
    # An alias with a line break adds a sibling of the literal...
    REAL.replace("(alias x)", "(alias x\n    Literal 2)"),
    # ...or tries to become the parent of what follows...
    REAL.replace("(alias x)", "(alias x\n   Other (children 1))"),
    # ...or a second statement at the top.
    REAL + "DropQuery t (children 1)\n Identifier t\n",
    # A count claimed through an alias that the node does not have.
    REAL.replace("(alias x)", "(alias x (children 1)"),
])
def test_any_forged_line_refuses_the_query(forged):
    with pytest.raises(SQLRefused, match="line breaks"):
        _nodes(forged)
