"""anobench.report.markdown: generated blocks of hand-written reports."""

from __future__ import annotations

import pytest

from anobench.report.markdown import replace_block


def test_replace_block_keeps_the_text_around_the_markers(tmp_path):
    text = "intro\n<!-- a -->\nold\n<!-- b -->\noutro\n"
    assert replace_block(text, "<!-- a -->", "<!-- b -->", "new", tmp_path) == (
        "intro\n<!-- a -->\n\nnew\n\n<!-- b -->\noutro\n")
    with pytest.raises(SystemExit, match="has no <!-- x --> ... <!-- b --> block"):
        replace_block(text, "<!-- x -->", "<!-- b -->", "new", tmp_path)
