"""The Debian package-description corpus builder of the benchmarks (benchmarks/debian_corpus.py)."""

from __future__ import annotations

import gzip
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import debian_corpus  # noqa: E402

STANZAS = """Package: alpha
Version: 1.0
Description: fast text tools
Section: utils

Package: beta
Description: a game of
 ancient warfare
Section: contrib/games

Package: nodesc
Section: libs

Package: alpha
Description: fast text tools
Section: utils
"""


def test_parse_packages():
    docs = debian_corpus.parse_packages(STANZAS)
    assert docs == [
        ("alpha", "fast text tools", "utils"),
        ("beta", "a game of ancient warfare", "games"),  # continuation joined, prefix dropped
        ("alpha", "fast text tools", "utils"),
    ]


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_corpus_from_lists(tmp_path, suffix):
    for arch in ("amd64", "i386"):  # the same packages in two lists: each once
        path = tmp_path / f"deb.example.org_dists_x_main_binary-{arch}_Packages{suffix}"
        data = STANZAS.encode()
        path.write_bytes(gzip.compress(data) if suffix else data)
    texts, labels = debian_corpus.debian_corpus(str(tmp_path))
    assert texts == ["fast text tools", "a game of ancient warfare"]
    assert labels == ["utils", "games"]


def test_no_lists_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get update"):
        debian_corpus.debian_corpus(str(tmp_path))


def test_tfidf_split_shapes():
    pytest.importorskip("sklearn")
    texts = [f"word{i % 7} shared text {i % 3}" for i in range(50)]
    labels = [["a", "b", "c"][i % 3] for i in range(50)]
    X_train, X_test, y_train, y_test, vec = debian_corpus.tfidf_split(texts, labels)
    assert X_train.shape[0] == 40 and X_test.shape[0] == 10
    assert X_train.shape[1] == X_test.shape[1] == len(vec.vocabulary_)
    assert X_train.dtype == np.float32 and X_train.indices.dtype == np.int32
    assert any(" " in term for term in vec.vocabulary_)  # bigrams
    assert list(vec.classes_) == ["a", "b", "c"] and set(y_train) <= {0, 1, 2}


@pytest.mark.skipif(not debian_corpus.package_lists(), reason="no APT package lists here")
def test_real_lists_parse():
    # the machine's lists (not read in full: the first one's first stanzas)
    path = debian_corpus.package_lists()[0]
    docs = debian_corpus.parse_packages(debian_corpus._read_list(path)[:100_000])
    assert len(docs) > 10
    assert all(desc and section and "/" not in section for _, desc, section in docs)
