"""The documentation is self-contained: every link and every file path it
names resolves inside this repository, and nothing points at material that
lives elsewhere (a steering repo's ``shared/`` folder, say).

Links to public web pages (a format's specification, an upstream pull
request) are citations and allowed; links to files must be relative and
resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_DIRS = {"spec", "reference", "conformance", "resumespec", "docs", "tests", "bench", "scripts"}
TOP_FILES = {"README.md", "Makefile", "pyproject.toml", ".ci/run"}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
CODE = re.compile(r"`([^`\n]+)`")
# A mention of a folder or file that lives outside this repository.
OUTSIDE = re.compile(r"(?<![\w./-])(shared/[\w./-]*|\.\./\.\./|steering repo)", re.I)


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for top in ("spec", "reference", "conformance", "bench", "scripts", "resumespec"):
        files += sorted(p for p in (ROOT / top).rglob("*.md") if "__pycache__" not in p.parts)
    return files


DOCS = doc_files()
IDS = [p.relative_to(ROOT).as_posix() for p in DOCS]


def repo_path_mentions(text: str) -> list[str]:
    """Backticked words that name a path in this repository (`spec/X.tla`, `docs/`)."""
    out = []
    for m in CODE.finditer(text):
        word = m.group(1).strip()
        if " " in word or word.startswith(("-", "/", "$")) or "://" in word:
            continue
        first = word.split("/", 1)[0]
        if word in TOP_FILES or ("/" in word and first in TOP_DIRS):
            out.append(word.rstrip(".,:;"))
    return out


def as_glob(word: str) -> str:
    """Placeholders (`MC_<name>.tla`, `MODEL.json`) stand for any name."""
    word = re.sub(r"<[^>]*>", "*", word)
    return re.sub(r"(?<=/)[A-Z]{3,}(?=\.)", "*", word)


def test_docs_found():
    names = set(IDS)
    assert {"README.md", "docs/protocol.md", "docs/model.md", "spec/README.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_links_resolve_inside_the_repo(doc):
    text = doc.read_text(encoding="utf-8")
    bad = []
    for m in [*LINK.finditer(text), *HTML_REF.finditer(text)]:
        target = m.group(1)
        if re.match(r"^(https?|mailto):", target) or target.startswith("#"):
            continue
        line = text.count("\n", 0, m.start()) + 1
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            bad.append(f"{doc.name}:{line}: {target} is not a relative link")
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if ROOT not in path.parents and path != ROOT:
            bad.append(f"{doc.name}:{line}: {target} leaves the repository")
        elif not path.exists():
            bad.append(f"{doc.name}:{line}: {target} does not exist")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_no_reference_to_material_outside_the_repo(doc):
    text = doc.read_text(encoding="utf-8")
    hits = [f"{doc.name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
            for m in OUTSIDE.finditer(text)]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_named_repo_paths_exist(doc):
    text = doc.read_text(encoding="utf-8")
    missing = []
    for word in map(as_glob, repo_path_mentions(text)):
        if any(ch in word for ch in "*?["):
            if not list(ROOT.glob(word)):
                missing.append(word)
        elif not (ROOT / word).exists():
            missing.append(word)
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_checker_catches_an_outside_pointer(tmp_path):
    """The patterns above do find what they are for."""
    text = "See `shared/protocol.md` of the steering repo and [x](../../elsewhere.md)."
    assert len(OUTSIDE.findall(text)) == 3
    assert repo_path_mentions("`spec/Nope.tla` and `python/sglang/x.py` and `docs/`") == \
        ["spec/Nope.tla", "docs/"]
    assert as_glob("reference/tlc_schedules/MODEL.json") == "reference/tlc_schedules/*.json"
    assert as_glob("spec/models/MC_<name>.tla") == "spec/models/MC_*.tla"


def test_protocol_page_names_the_engine_commits():
    text = (ROOT / "docs/protocol.md").read_text(encoding="utf-8")
    for commit in ("d1bceb411", "7a7a71977", "caff70bd5", "2141e0842", "cca20b094"):
        assert f"`{commit}`" in text, commit
    for doc in ("docs/model.md", "docs/sglang-adapter.md"):
        assert "(protocol.md)" in (ROOT / doc).read_text(encoding="utf-8"), doc
