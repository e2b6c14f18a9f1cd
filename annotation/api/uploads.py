"""Upload handler for `POST /api/ingest/`: streams the file to a private file under var/, hashing it
as it goes, and stops reading once it passes the size limit (never the whole body in memory)."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload


class HashedUpload(UploadedFile):  # type: ignore[type-arg]  # not subscriptable at run time
    """An uploaded file already on disk (0600, under var/uploads/incoming) with its SHA-256."""

    def __init__(self, *, path: Path, sha256: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path, self.sha256 = path, sha256

    def temporary_file_path(self) -> str:
        return str(self.path)


class PrivateUploadHandler(FileUploadHandler):
    """Each file part goes to its own 0600 file in `folder`; past `limit` bytes the upload stops."""

    def __init__(self, request: Any = None, *, folder: Path, limit: int) -> None:
        super().__init__(request)
        self.folder, self.limit = folder, limit
        self.paths: list[Path] = []  # every file written, so the view can remove what it does not keep
        self.too_large = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        # mkstemp makes the file 0600; it outlives the request only when the upload is accepted.
        self.file = tempfile.NamedTemporaryFile(dir=self.folder, prefix="upload-", delete=False)  # noqa: SIM115
        self.paths.append(Path(self.file.name))
        self.digest = hashlib.sha256()
        self.size = 0
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.size += len(raw_data)
        if self.size > self.limit:
            self.too_large = True
            self.file.close()
            raise StopUpload(connection_reset=False)
        self.digest.update(raw_data)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> HashedUpload:
        self.file.close()
        return HashedUpload(path=Path(self.file.name), sha256=self.digest.hexdigest(), file=None,
                            name=self.file_name, content_type=self.content_type, size=file_size,
                            charset=self.charset, content_type_extra=self.content_type_extra)

    def discard(self) -> None:
        """Remove every file this request wrote (an accepted upload has been moved away already)."""
        for path in self.paths:
            path.unlink(missing_ok=True)
