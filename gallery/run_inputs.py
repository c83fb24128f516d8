"""The pictures runs compute from, stored once per project by their content.

A run reads the images it was launched with, not the project's current ones (the project's images
can be replaced while it waits). Each distinct picture is stored once per project as a ``RunInput``
(found by the SHA-256 of its bytes): the 25 runs of a sweep, and every later run of the same
images, name that one file, and the user's storage counts it once (``gallery.quotas``).

A launch goes through one ``InputStore``: ``store`` (before the launch's transaction, so no file is
written while the database's write lock is held) points each run's file field at the stored copy,
writing the file when the picture is new; ``save`` (inside the transaction) writes the rows of the
new pictures; ``discard`` removes what this launch wrote when it fails. Two launches racing to store
the same new picture both write a file; the row decides which stays, and the other file is removed
once the transaction commits.
"""
import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from gallery import files
from gallery.models import RunInput


def digest_of(data):
    return hashlib.sha256(data).hexdigest()


class InputStore:
    """The stored inputs of one launch of runs of ``project``."""

    def __init__(self, project):
        self.project = project
        self._digests = {}  # source file name -> digest of its bytes
        self._stored = {}  # digest -> RunInput (saved, or new until ``save``)
        self._targets = {}  # digest -> the file fields pointed at it
        self._written = []  # names this launch wrote

    def store(self, source, target):
        """Point file field ``target`` at the project's stored copy of ``source``'s picture, storing
        it first when the project has none (or its file is gone); return the bytes written."""
        digest = self._digests.get(source.name)  # a sweep's runs share their sources: read each once
        if digest is None:
            with source.open("rb") as handle:
                data = handle.read()
            digest = self._digests[source.name] = digest_of(data)
        stored = self._stored.get(digest)
        if stored is None:
            stored = RunInput.objects.filter(project=self.project, digest=digest).first()
            if stored is not None and not default_storage.exists(stored.file.name):
                stored.file.name = ""  # lost: store it again under a new name (``save`` updates the row)
        written = 0
        if stored is None or not stored.file.name:
            stored = stored or RunInput(project=self.project, digest=digest)
            stored.size = written = len(data)
            files.save_file(stored.file, files.extension(source.name), ContentFile(data))
            self._written.append(stored.file.name)
        self._stored[digest] = stored
        self._targets.setdefault(digest, []).append(target)
        target.name = stored.file.name
        return written

    def save(self):
        """Write the rows of the pictures this launch stored (call inside the launch's transaction)."""
        for digest, stored in self._stored.items():
            if stored.file.name not in self._written:
                continue
            if stored.pk is not None:
                RunInput.objects.filter(pk=stored.pk).update(file=stored.file.name, size=stored.size)
                continue
            row, created = RunInput.objects.get_or_create(
                project=self.project, digest=digest, defaults={"file": stored.file.name, "size": stored.size}
            )
            if not created:  # another launch stored the same picture meanwhile: use its file
                files.delete_names_on_commit([stored.file.name])
                for target in self._targets[digest]:
                    target.name = row.file.name

    def discard(self):
        """Remove the files this launch wrote, and their rows if they were committed (the launch failed)."""
        RunInput.objects.filter(project=self.project, file__in=self._written).delete()
        files.delete_names(self._written)
        self._written = []
