"""A Cloud Storage bucket (``gs://``) through google-cloud-storage.

Credentials are Application Default Credentials; the endpoint is the library's own choice, so
``STORAGE_EMULATOR_HOST`` in the environment points it at an emulator (with anonymous
credentials). No project is needed: every request names its bucket.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from .buckets import SHA256_KEY, Remote
from .outcome import one_line


class GcsStore:
    def __init__(self, bucket: str):
        from google.cloud import storage

        self.name = bucket
        self._client = storage.Client(project=None)
        self._bucket = self._client.bucket(bucket)

    def list(self, prefix: str) -> dict[str, Remote]:
        return {blob.name: Remote(blob.size, (blob.metadata or {}).get(SHA256_KEY))
                for blob in self._client.list_blobs(self._bucket, prefix=prefix)}

    def sha256(self, key: str) -> str | None:
        return None  # the listing shows each object's metadata already

    def read(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self._bucket.blob(key).download_as_bytes()
        except NotFound:
            return None

    def write(self, key: str, data: bytes, content_type: str, sha256: str) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        blob = self._bucket.blob(key)
        blob.content_type = content_type  # sent in the object's resource too, where emulators look for it
        blob.metadata = {SHA256_KEY: sha256}
        # Uploading the same bytes again does no harm, so retrying is safe.
        blob.upload_from_string(data, content_type=content_type, retry=DEFAULT_RETRY)

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(key).delete()
        except NotFound:
            pass

    def link(self, key: str) -> str:
        return f"https://storage.cloud.google.com/{self.name}/{quote(key)}"

    @staticmethod
    def explain(error: Exception) -> str | None:
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        if isinstance(error, auth.DefaultCredentialsError):
            return ("no Google credentials found (Application Default Credentials: run gcloud auth "
                    "application-default login, or set GOOGLE_APPLICATION_CREDENTIALS)")
        if isinstance(error, auth.RefreshError):
            return f"Google credentials refused ({one_line(error, 200)})"
        if isinstance(error, api.NotFound):
            return "bucket does not exist (404)"
        if isinstance(error, api.Forbidden):
            return f"access denied (403: {_message(error)})"
        if isinstance(error, api.Unauthorized):
            return f"credentials refused (401: {_message(error)})"
        if isinstance(error, api.GoogleAPICallError):
            return f"Cloud Storage answered {error.code}: {_message(error)}"
        if isinstance(error, api.RetryError):
            cause = error.cause or error
            return f"Cloud Storage did not answer (gave up retrying: {type(cause).__name__})"
        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return f"cannot reach Cloud Storage ({type(error).__name__})"
        return None


def _message(error) -> str:
    """The server's message, without the request (``GET https://...: ``) the library puts first."""
    return one_line(re.sub(r"^[A-Z]+ \S+: ", "", str(error.message)), 200)
