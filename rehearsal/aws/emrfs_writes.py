"""Every file a step writes under the S3 mirror while it runs, in order, with the bytes it wrote.

The mirror compares S3 with the end state of the step's locations only, so a file written and then
renamed or deleted during the step (a staging folder, Spark's `_temporary` attempt files) would
never reach S3. On EMR, EMRFS PUTs each such file when it is closed, and a rename or delete is a
PUT at the new key and a DELETE of the old one: the instance role must be allowed all of them.
This recorder watches the whole mirror with inotify (watchdog) so the mirror can make those calls.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import EVENT_TYPE_CLOSED, EVENT_TYPE_CREATED, EVENT_TYPE_MOVED, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

# Written at the root (never a bucket: bucket names cannot start with "."); its event arriving means
# every event of the step before it has been handled.
_SYNC_NAME = ".emrfs-writes-sync"
_SYNC_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Written:
    path: Path  # where the step wrote (or moved) the file
    body: Path | None  # a hard link to what it wrote; None if the file was gone before it could be linked


class WriteRecorder(FileSystemEventHandler):
    """Context manager: `written()` after the step lists the files created, closed or moved in, in order."""

    def __init__(self, root: Path):
        self._root = root
        self._spool: Path | None = None
        self._observer: InotifyObserver | None = None
        self._written: dict[Path, Written] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._links = 0

    def __enter__(self) -> WriteRecorder:
        self._root.mkdir(parents=True, exist_ok=True)
        # Hard links keep the bytes of files renamed or deleted later; same file system as the mirror.
        self._spool = Path(tempfile.mkdtemp(prefix=".emrfs-writes-", dir=self._root.parent))
        self._observer = InotifyObserver()
        self._observer.schedule(self, str(self._root), recursive=True)
        self._observer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)

    def written(self) -> list[Written]:
        """Wait until every event so far is handled, stop watching, and list what was written."""
        sync = self._root / _SYNC_NAME
        sync.write_bytes(b"")
        if not self._synced.wait(_SYNC_TIMEOUT_SECONDS):
            raise RuntimeError(f"the file watcher on {self._root} did not report within {_SYNC_TIMEOUT_SECONDS}s")
        self._stop()
        sync.unlink(missing_ok=True)
        with self._lock:
            return list(self._written.values())

    def on_any_event(self, event) -> None:  # noqa: ANN001 (watchdog's event types)
        if event.is_directory or event.event_type not in (EVENT_TYPE_CREATED, EVENT_TYPE_CLOSED, EVENT_TYPE_MOVED):
            return
        path = Path(os.fsdecode(event.src_path))
        if path == self._root / _SYNC_NAME:
            self._synced.set()
            return
        with self._lock:
            if event.event_type == EVENT_TYPE_MOVED:
                # The file was written at its old path first (EMRFS PUT it there), even if its own
                # events came too early for the watch its new directory got.
                dest = Path(os.fsdecode(event.dest_path))
                self._written[dest] = Written(dest, self._link(dest, self._written.get(dest)))
                self._written.setdefault(path, Written(path, self._written[dest].body))
            else:
                self._written[path] = Written(path, self._link(path, self._written.get(path)))

    def _link(self, path: Path, earlier: Written | None) -> Path | None:
        assert self._spool is not None
        try:
            inode = path.stat().st_ino
            if earlier is not None and earlier.body is not None and earlier.body.stat().st_ino == inode:
                return earlier.body
            self._links += 1
            link = self._spool / str(self._links)
            os.link(path, link)
            return link
        except FileNotFoundError:  # renamed or deleted before this event was handled
            return earlier.body if earlier is not None else None

    def _stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
