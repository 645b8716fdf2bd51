"""``python -m benchmarks.tables`` outside its rendering (which tests/test_readme.py checks
against the committed results): where it writes, what it leaves alone, and how a quick
run is labelled."""

from __future__ import annotations

from benchmarks import peers, tables


def page(path, inner="old"):
    path.write_text(f"# title\n\n{tables.START}\n{inner}\n{tables.END}\n\nafter\n")
    return path


def test_update_doc_replaces_only_the_marked_part_each_marker_on_its_own_line(tmp_path):
    doc = page(tmp_path / "b.md")
    assert tables.update_doc(doc, "| a |\n| - |")
    assert doc.read_text() == f"# title\n\n{tables.START}\n| a |\n| - |\n{tables.END}\n\nafter\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    assert not tables.update_doc(bare, "x") and bare.read_text() == "no markers\n"
    assert not tables.update_doc(tmp_path / "missing.md", "x")


def test_main_rewrites_the_peers_page_only_with_the_default_page(tmp_path, monkeypatch):
    """The default run writes both pages; --doc OTHER writes OTHER alone (the real pages
    stay as they are)."""
    default, companion, other = (page(tmp_path / n) for n in ("b.md", "p.md", "o.md"))
    monkeypatch.setattr(tables, "DOC", default)
    monkeypatch.setattr(peers, "DOC", companion)
    monkeypatch.setattr(tables, "read_results", lambda folder: {"x": {}})
    monkeypatch.setattr(tables, "render", lambda results: "main table")
    monkeypatch.setattr(peers, "render", lambda results: "peers table")
    assert tables.main(["--doc", str(other)]) == 0
    assert "main table" in other.read_text() and "old" in companion.read_text()
    assert "old" in default.read_text()
    assert tables.main([]) == 0
    assert "main table" in default.read_text() and "peers table" in companion.read_text()


def test_a_quick_run_is_labelled_as_such():
    machine = {"cpu_model": "CPU", "usable_cores": 2, "torch_threads": 1}
    both = {"full": {"date": "2026-12-01T10:00", "machine": machine},
            "short": {"date": "2026-12-02T10:00", "machine": machine, "quick": True}}  # fmt: skip
    line = tables.measured_on(both)
    assert "full 2026-12-01;" in line and "short 2026-12-02 quick mode" in line
