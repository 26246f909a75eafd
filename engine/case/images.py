"""A case is its images (their sha256), not its folder's path.

A folder classified again into a case file is compared, image by image, with the case the file holds for that
folder: which of the case's images are still there (same content), changed (same name, other content), gone, and
which are new.  A folder that holds none of the case's images any more, or whose images were replaced (some gone,
others new), holds another sample: it is refused (:class:`NotTheCase`), never pooled into the case (one case of 39
cells at 66.7 % that matched neither patient, 40.0 % and 94.7 %).  Refused rather than made a new case: a case is
found, named and reported by its folder (``cases.root``), so two cases of one path in one record would be told
apart by nobody reading it; the other sample belongs in another case file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..fileio import FileRefused, read_regular_file
from ..pipeline import ScanItem
from .document import CaseDocument
from .kinds import StoreErrorKind
from .schema import StoreError

__all__ = [
    "ImageChange",
    "NotTheCase",
    "StoredImages",
    "case_images",
    "compare_images",
    "compare_stored",
    "hash_files",
    "paths_to_hash",
]

#: root -> {path of each cell of that case -> the sha256s it was classified with (empty: never classified)}: what a
#: case's images are, as plain data (taken on the document's thread, compared on a worker: the app)
StoredImages = dict[str, dict[str, frozenset[str]]]


class NotTheCase(StoreError):
    """The folder's images are not the images of the case stored for it (another sample)."""

    def __init__(self, message: str):
        super().__init__(message, StoreErrorKind.NOT_THE_CASE)


@dataclass
class ImageChange:
    """How the images of one stored case's folder differ from the case (paths; ``common``: images of the case
    still there with the same content)."""

    root: str
    stored: int = 0  # the case's classified images
    common: int = 0
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    @property
    def another_sample(self) -> bool:
        """None of the case's images is there any more (all gone or changed), or they were replaced."""
        if not self.stored:
            return False
        return (self.common == 0 and bool(self.changed or self.new)) or bool(self.gone and self.new)

    def describe(self) -> str:
        parts = [f"{self.common} of its {self.stored} images are still there"]
        for n, what in ((len(self.changed), "changed"), (len(self.gone), "gone"), (len(self.new), "new")):
            if n:
                parts.append(f"{n} {what}")
        return ", ".join(parts)


def hash_files(paths: Iterable[str]) -> dict[str, str]:
    """path -> sha256 of the file's bytes (files that cannot be read are left out)."""
    out = {}
    for p in paths:
        try:
            out[p] = hashlib.sha256(read_regular_file(p)).hexdigest()
        except (OSError, FileRefused):
            continue
    return out


def case_images(doc: CaseDocument, items: Sequence[ScanItem]) -> StoredImages:
    """:data:`StoredImages` of every case of ``doc`` that a root of ``items`` names (no file is read)."""
    roots = {str(it.root) for it in items} & set(doc.cases)
    return {
        root: {
            c.key: frozenset(r.sha256 for r in c.results.values() if r.sha256) for c in doc.cells_of(doc.cases[root])
        }
        for root in roots
    }


def paths_to_hash(stored: StoredImages, items: Sequence[ScanItem]) -> list[str]:
    """The files :func:`compare_stored` needs hashed: the scanned ones of a stored case's folder, and the case's own."""
    return list(
        dict.fromkeys(
            [str(it.path) for it in items if str(it.root) in stored] + [k for r in stored.values() for k in r]
        )
    )


def compare_stored(
    stored: StoredImages, items: Sequence[ScanItem], hashes: Mapping[str, str]
) -> dict[str, ImageChange]:
    """root -> :class:`ImageChange` for every case of ``stored``.  ``hashes``: path -> sha256 of the files now
    (:func:`hash_files` of :func:`paths_to_hash`)."""
    out: dict[str, ImageChange] = {}
    scanned = {str(it.path) for it in items}
    for root, cells in stored.items():
        ch = out[root] = ImageChange(root)
        for key, known in cells.items():
            if not known:
                continue
            ch.stored += 1
            now = hashes.get(key)
            if now is None and (key not in scanned or not os.path.exists(key)):
                ch.gone.append(key)
            elif now is not None and now not in known:
                ch.changed.append(key)
            elif now is not None:
                ch.common += 1
        ch.new = [str(it.path) for it in items if str(it.root) == root and str(it.path) not in cells]
    return out


def compare_images(doc: CaseDocument, items: Sequence[ScanItem], hashes: Mapping[str, str]) -> dict[str, ImageChange]:
    """root -> :class:`ImageChange` for every root of ``items`` that ``doc`` already holds a case of.  ``hashes``:
    path -> sha256 of the files now (:func:`hash_files`; the case's own images included)."""
    return compare_stored(case_images(doc, items), items, hashes)


def refuse_other_samples(changes: Mapping[str, ImageChange], doc: CaseDocument, store_path: object) -> None:
    """:class:`NotTheCase` naming every folder whose images are another sample's."""
    bad = [ch for ch in changes.values() if ch.another_sample]
    if bad:
        what = "; ".join(f"{doc.cases[ch.root].label} ({ch.root}): {ch.describe()}" for ch in bad)
        raise NotTheCase(
            f"the folder's images are not the case stored for it in {store_path} ({what}); a case is its images, "
            "so they are not added to it: nothing was classified or written. Classify this folder into another "
            "case file (--store NEW.leukoscan), or put the case's own images back"
        )
