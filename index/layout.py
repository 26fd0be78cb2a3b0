"""Index stage, part 0: where an index lives on disk, and how readers find it without races.

An index path is a directory of *generations*, each a complete whoosh index::

    index/
      CURRENT            one line: the name of the live generation ("gen-2f9c1a7e")
      crawldex.lock      the writers' lock (an OS lock, see ``writer.write_lock``)
      gen-2f9c1a7e/      whoosh files + crawldex-index.json

Incremental writes commit into the live generation (whoosh commits publish a new table of
contents by rename, so readers see the old or the new state, never half). A rebuild builds a new
generation beside it and publishes it by replacing ``CURRENT`` atomically (temp file + fsync +
``os.replace``); only then are older generations deleted. A reader resolves ``CURRENT`` once per
search; if the generation it resolved disappears under it (a rebuild just replaced it), it
resolves again and finds the new one. So a reader never sees a missing or partial index, and an
index that exists is never mistaken for an empty one.

An index directory of crawldex before generations (whoosh files directly in ``index/``) is still
read as the live generation; the next rebuild moves it into the new layout.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from whoosh import index
from whoosh.filedb.filestore import FileStorage
from whoosh.filedb.structfile import StructFile

from index.schema import check_version
from pipeline.errors import SearchIndexError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The pointer file naming the live generation.
POINTER_FILE = "CURRENT"
#: Prefix of generation directories.
GENERATION_PREFIX = "gen-"
#: How many times a reader re-resolves when the index changes under it. Each retry needs the
#: pointer or whoosh's table of contents to have moved on, so this bounds rebuilds *during one
#: search*, not time.
READ_ATTEMPTS = 8


def current_generation(path: Path) -> Path | None:
    """Return the directory of the live generation of the index at ``path`` (None if none).

    A pre-generation index (whoosh files directly in ``path``) is its own generation.
    """
    try:
        name = (path / POINTER_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        name = ""
    except NotADirectoryError:
        return None
    if name:
        return path / name
    if path.is_dir() and index.exists_in(str(path)):
        return path
    return None


def fingerprint(path: Path) -> str | None:
    """What the live generation of the index at ``path`` is on disk: its name and each of its
    files' name, size and modification time, hashed (None without an index).

    Any write leaves another one: a commit adds segment files and a table of contents, a
    rebuild publishes another generation, a hand edit or a writer killed mid-commit changes a
    file or leaves one behind. The same fingerprint says the index holds what it held when it
    was taken, without opening it.
    """
    generation = current_generation(path)
    if generation is None:
        return None
    digest = hashlib.blake2b(generation.name.encode(), digest_size=16)
    try:
        with os.scandir(generation) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                stat = entry.stat(follow_symlinks=False)
                digest.update(f"\0{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    except OSError:  # gone under us (a rebuild replaced it): nothing to vouch for
        return None
    return digest.hexdigest()


def new_generation(path: Path) -> Path:
    """Create and return an empty, unpublished generation directory inside ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=GENERATION_PREFIX, dir=path))


def publish(path: Path, generation: Path) -> None:
    """Make ``generation`` the live one: write ``CURRENT`` to a temp file and rename it over."""
    fd, tmp = tempfile.mkstemp(prefix=".CURRENT-", dir=path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(generation.name + "\n")
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(path / POINTER_FILE)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path)
    logger.info("index %s now serves generation %s", path, generation.name)


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry change (the rename) to disk where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_old_generations(path: Path) -> None:
    """Delete every generation but the live one, and whoosh files of a pre-generation index.

    Call only while holding the writers' lock and after ``publish``: readers that resolved an
    older generation either hold its files open (POSIX keeps them) or re-resolve.
    """
    live = current_generation(path)
    if live is None or live == path:
        return
    for child in path.iterdir():
        if child == live:
            continue
        if child.is_dir() and child.name.startswith(GENERATION_PREFIX):
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and _is_legacy_file(child.name):
            child.unlink(missing_ok=True)


def _is_legacy_file(name: str) -> bool:
    """True for the files a pre-generation index kept directly in the index path."""
    return name.endswith((".toc", ".seg", ".pst", ".trm", ".fln", ".dci", ".dcz", ".vps")) or (
        name in ("crawldex-index.json", "MAIN_WRITELOCK")
    )


class _MappedStorage(FileStorage):  # type: ignore[misc]  # whoosh is untyped
    """whoosh's file storage, with every file memory-mapped and read in place.

    whoosh's own mmap mode wraps each part of a compound segment (``.seg``) in a ``BufferFile``
    whose ``BytesIO`` copies the whole part, so opening a searcher copied every segment's
    postings and stored fields: ~190 ms a search at 30k documents, growing with the index. Its
    plain-file mode reads in place but leaves open files behind (``ResourceWarning``) when a
    segment vanishes mid-open, which a concurrent rebuild makes routine. A map read through
    whoosh's sub-file view copies only the blocks a search touches, and needs no closing.
    """

    def open_file(self, name: str, **kwargs: Any) -> Any:
        with (Path(self.folder) / name).open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:  # an empty file cannot be mapped
                return StructFile(io.BytesIO(), name=name, **kwargs)
            source = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return StructFile(source, name=name, **kwargs)


def open_generation(generation: Path, *, mmap: bool = True) -> Any:
    """Open the whoosh index of ``generation`` after checking its schema version.

    Readers map each file and read it in place (``_MappedStorage``). ``mmap=False`` reads
    segment files with ordinary reads instead of mapping them: what writers
    use, because whoosh cannot unmap a segment while any of its buffers is still referenced, so
    segments merged away by a commit stay mapped (and count in RSS) until a garbage collection.

    Raises:
        SearchIndexError: the index has another schema version.
        whoosh.index.EmptyIndexError, OSError: the generation is gone or incomplete.
    """
    check_version(generation)
    if not mmap:
        return FileStorage(str(generation), supports_mmap=False).open_index()
    return _MappedStorage(str(generation), supports_mmap=False).open_index()


def read_index(path: Path, read: Callable[[Any], T], empty: T, *, mmap: bool = True) -> T:
    """Run ``read(searcher)`` on the live generation of the index at ``path``.

    Args:
        path: the index path.
        read: called with an open whoosh ``Searcher``; its result is returned.
        empty: the result when there is no index at all (never for an unreadable one).
        mmap: map the files (searches: only the blocks a search touches are read); False
            reads them (a pass over whole columns, whose mapped pages would all count in RSS).

    Returns:
        What ``read`` returned, or ``empty``.

    Raises:
        SearchIndexError: the index has another schema version or cannot be read.
    """
    error: Exception | None = None
    for _ in range(READ_ATTEMPTS):
        generation = current_generation(path)
        if generation is None:
            return empty
        try:
            ix = open_generation(generation, mmap=mmap)
            with ix.searcher() as searcher:
                return read(searcher)
        except SearchIndexError:
            if current_generation(path) == generation:
                raise
            error = None  # a rebuild replaced an index of another version: read the new one
        except (OSError, index.IndexError) as exc:
            # A rebuild deleted the generation, or a commit merged segments away, after we
            # resolved it; both leave a newer state to read at once.
            logger.debug("reading %s failed (%s); resolving the index again", generation, exc)
            error = exc
    raise SearchIndexError(
        f"cannot read the search index in {path}: {error}; run `crawldex reindex` to rebuild it "
        "from the store"
    ) from error
