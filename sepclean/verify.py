"""Whether a manifest's files still hold the audio it hashed: the one check every cached result
made from a manifest relies on.

A manifest names each source's audio by its content hash (``Track.hashes``), and whatever is made
from it is keyed by those hashes (embeddings by a source's hash, artifacts by ``Manifest.hash``). A
file rewritten after its manifest was written leaves the manifest, and so the key, unchanged: served
as it is, a cached result would describe the old audio. So before a result is served or made, the
manifest's files are verified: a file that no longer holds the audio its manifest hashed is an error
naming it (its manifest is stale: run ``sepclean manifest`` again, which gives the new audio new
hashes, and so new keys).

Hashing every file each time would cost a full decode of the dataset, so each verification is
recorded in the user's cache (``$SEPCLEAN_CACHE``, else ``$XDG_CACHE_HOME/sepclean``, else
``~/.cache/sepclean``)::

    files/<ab>/<path digest>.json    a file last seen holding the audio of a content hash: path,
                                     size, mtime, inode, ctime

Before a source is used, its files' size, mtime, inode and ctime are compared with those recorded the
last time they were found to hold that content, and the files are hashed again when any differs (or
they were never recorded). Size and mtime alone can be restored after a file is replaced
(``os.utime``, ``touch -r``, ``cp -p``); the ctime cannot be set, and moves a file's every rewrite, so
such a file is hashed again (a ``chmod`` or a new hard link also moves it: one extra hash, no wrong
answer).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sepclean import audio
from sepclean.errors import writing
from sepclean.files import atomic_write_stream
from sepclean.manifest import MIXTURE, Manifest, ManifestError, Track
from sepclean.scan import TrackProblem, content_hash


def default_root() -> Path:
    """The user's sepclean cache: ``$SEPCLEAN_CACHE``, else ``$XDG_CACHE_HOME/sepclean``, else
    ``~/.cache/sepclean``."""
    if os.environ.get("SEPCLEAN_CACHE"):
        return Path(os.environ["SEPCLEAN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sepclean"


class FileRecords:
    """Verifications of manifests' files, recorded under ``root/files`` (``root``: the user's cache
    by default)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def verify_manifests(self, *manifests: Manifest) -> None:
        """:meth:`verify_manifest` of each."""
        for manifest in manifests:
            self.verify_manifest(manifest)

    def verify_manifest(self, manifest: Manifest) -> None:
        """Every source of every track of ``manifest`` (its mixture file, when it has one, and its
        stems) still holds the audio the manifest hashed; a ManifestError names the first file that
        does not."""
        for track in manifest:
            for source in ([MIXTURE] if track.mixture is not None else []) + list(track.stems):
                self.verify(track, source)

    def verify(self, track: Track, source: str) -> None:
        """The files of ``track``'s ``source`` still hold the audio the manifest hashed (a summed
        mixture: its stems'); a ManifestError names a file that does not."""
        if source == MIXTURE and track.mixture is None:
            for stem in track.stems:
                self.verify(track, stem)
            return
        files = [path.resolve() for path in track.files(source)]  # several for a summed (MoisesDB) stem
        expected = track.hashes[source]
        if track.streams is not None:  # musdb .stem.mp4: the file's bytes, one hash for every stream
            expected = expected.rsplit("#", 1)[0]
        stats = []
        for path in files:
            try:
                stat = path.stat()
            except FileNotFoundError:
                raise ManifestError(f"{path} ({track.id}, {source}) is gone since the manifest was written") from None
            stats.append([str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns])
        record_path = self._record(files)
        seen = {"files": stats, "hash": expected}
        try:
            if json.loads(record_path.read_text()) == seen:
                return
        except (OSError, ValueError):
            pass  # never verified, or a corrupt record: hash the files
        if _file_content_hash(track, source, files) != expected:
            listed = ", ".join(map(str, files))
            raise ManifestError(
                f"{listed} ({track.id}, {source}) no longer holds the audio its manifest hashed: the file changed "
                "after the manifest was written. Run `sepclean manifest` again (nothing made from the old audio "
                "is used)"
            )
        with writing(record_path):
            record_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_stream(record_path, lambda f: f.write(json.dumps(seen).encode()))

    def _record(self, files: list[Path]) -> Path:
        name = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()
        return self.root / "files" / name[:2] / f"{name}.json"


def _file_content_hash(track: Track, source: str, files: list[Path]) -> str:
    """The hash the manifest records for these files, computed from what they hold now."""
    if track.streams is not None:
        return audio.file_hash(files[0])
    try:
        return content_hash(files, track.sample_rate, track.channels, track.frames)
    except TrackProblem as e:
        raise ManifestError(f"{files[0]} ({track.id}, {source}) cannot be read as its manifest says: {e}") from None
