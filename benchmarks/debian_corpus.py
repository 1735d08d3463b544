"""A real text corpus available offline: Debian package descriptions labelled by section.

APT keeps the package lists of its sources in ``/var/lib/apt/lists/*_Packages``
(plain, or compressed: ``.lz4``, ``.gz``, ``.xz``; ``apt-get update`` fills
them).  Each package is one document: its ``Description`` (the one-line
synopsis; the long descriptions live in separate translation files) as text,
its ``Section`` (``games``, ``libs``, ``python``, ...; an archive prefix such
as ``contrib/`` is dropped) as label.  Bookworm's main archive gives 63,440
documents and 58 sections (the shape the issue measured: 63,681 documents, 58
classes).  :func:`tfidf_split` turns them into TF-IDF unigrams and bigrams
with scikit-learn's ``TfidfVectorizer`` (fitted on the training part only)
and a fixed 80/20 train/test split.

Nothing is written to disk or committed: the corpus is built in memory from
the machine's lists, and :func:`debian_corpus` raises ``FileNotFoundError``
when there are none (the benchmarks and tests that use it are then skipped).

Run ``python benchmarks/debian_corpus.py`` for its size.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import shutil
import subprocess

LISTS_DIR = "/var/lib/apt/lists"
_APT_HELPER = "/usr/lib/apt/apt-helper"


def package_lists(lists_dir=LISTS_DIR):
    """The binary package lists in ``lists_dir`` (one file per source and architecture)."""
    paths = sorted(glob.glob(os.path.join(lists_dir, "*_Packages*")))
    # one file per list: the same list may be there plain and compressed
    by_stem = {}
    for path in paths:
        stem = path.split("_Packages")[0]
        by_stem.setdefault(stem, path)
    return list(by_stem.values())


def _read_list(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    if path.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8", errors="replace").read()
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8", errors="replace").read()
    if path.endswith(".lz4"):
        helper = _APT_HELPER if os.path.exists(_APT_HELPER) else shutil.which("lz4")
        if helper is None:
            raise FileNotFoundError(f"no apt-helper or lz4 to read {path}")
        command = [helper, "cat-file", path] if helper.endswith("apt-helper") else [
            helper, "-dc", path]  # fmt: skip
        return subprocess.run(command, check=True, capture_output=True).stdout.decode(
            "utf-8", errors="replace"
        )
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def parse_packages(text):
    """``(package, description, section)`` of each stanza of a ``Packages`` file."""
    docs = []
    for stanza in text.split("\n\n"):
        fields = {}
        key = None
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += " " + line.strip().lstrip(".")
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        package, description = fields.get("Package"), fields.get("Description")
        section = fields.get("Section")
        if package and description and section:
            docs.append((package, description, section.rsplit("/", 1)[-1]))
    return docs


def debian_corpus(lists_dir=LISTS_DIR):
    """Texts and section labels of every package in the lists, each package once.

    Raises ``FileNotFoundError`` when ``lists_dir`` has no package list.
    """
    paths = package_lists(lists_dir)
    if not paths:
        raise FileNotFoundError(
            f"no *_Packages list in {lists_dir}: run 'apt-get update' to fetch them"
        )
    seen, texts, labels = set(), [], []
    for path in paths:
        for package, description, section in parse_packages(_read_list(path)):
            if package in seen:  # the same package in several lists (architectures, suites)
                continue
            seen.add(package)
            texts.append(description)
            labels.append(section)
    return texts, labels


def tfidf_split(texts, labels, *, test_size=0.2, seed=0, dtype="float32"):
    """TF-IDF unigrams and bigrams, CSR with int32 indices, and a fixed train/test split.

    Returns ``X_train, X_test, y_train, y_test, vectorizer``; the labels are
    integer codes of the sorted section names.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import train_test_split

    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    t_train, t_test, y_train, y_test = train_test_split(
        texts, y.astype(np.intp), test_size=test_size, random_state=seed
    )
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), dtype=np.dtype(dtype))
    X_train = vectorizer.fit_transform(t_train)
    X_test = vectorizer.transform(t_test)
    for X in (X_train, X_test):
        X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    vectorizer.classes_ = classes
    return X_train, X_test, y_train, y_test, vectorizer


if __name__ == "__main__":
    texts, labels = debian_corpus()
    X_train, X_test, y_train, y_test, vec = tfidf_split(texts, labels)
    print(
        f"{len(texts)} documents, {len(vec.classes_)} sections; TF-IDF 1-2-grams: "
        f"train {X_train.shape} ({X_train.nnz} non-zeros), test {X_test.shape}"
    )
