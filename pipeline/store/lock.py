"""An exclusive lock on a data directory, so two crawls never write one store at once.

``fcntl.flock`` is released by the kernel when its holder dies (even by ``kill -9``), so a crashed
crawl never leaves a stale lock behind: the lock file stays, the lock does not.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from pipeline.errors import CrawlLocked


class DirectoryLock:
    """``with DirectoryLock(dir, "crawl"):`` holds ``dir/crawl.lock`` exclusively."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            CrawlLocked: another process holds it (its pid is named when known).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CrawlLocked(
                f"another crawldex process (pid {holder}) is already crawling into "
                f"{self.path.parent}; wait for it to finish, or stop it, then run this again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
