"""An S3 bucket (``s3://``) through boto3.

Credentials come from the default AWS chain (environment, shared config files, instance or
container role); the endpoint is boto3's own choice, so ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` in the environment points it at a local server. A bucket in another region
than the default one is followed by boto3's redirects.

S3 listings carry no metadata, so an object's SHA-256 is read with one HEAD request, and only
when the manifest cannot vouch for it.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from .buckets import SHA256_KEY, Remote
from .outcome import one_line

_DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                    "TokenRefreshRequired", "InvalidClientTokenId", "UnrecognizedClientException"}


class S3Store:
    def __init__(self, bucket: str):
        import boto3
        from botocore.config import Config

        self.name = bucket
        self._client = boto3.session.Session().client("s3", config=Config(
            connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 5}))

    def list(self, prefix: str) -> dict[str, Remote]:
        found = {}
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            for item in page.get("Contents", ()):
                found[item["Key"]] = Remote(item["Size"], None)
        return found

    def sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self._client.head_object(Bucket=self.name, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("Metadata", {}).get(SHA256_KEY)

    def read(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.name, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            return None

    def write(self, key: str, data: bytes, content_type: str, sha256: str) -> None:
        self._client.put_object(Bucket=self.name, Key=key, Body=data, ContentType=content_type,
                                Metadata={SHA256_KEY: sha256})

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.name, Key=key)

    def link(self, key: str) -> str:
        if "." in self.name:  # a dotted name does not match the certificate of <bucket>.s3.amazonaws.com
            return f"s3://{self.name}/{key}"
        return f"https://{self.name}.s3.amazonaws.com/{quote(key)}"

    @staticmethod
    def explain(error: Exception) -> str | None:
        from botocore import exceptions as bx

        if isinstance(error, bx.NoCredentialsError):
            return ("no AWS credentials found (the default chain: environment, shared config files, instance "
                    "or container role)")
        if isinstance(error, bx.ClientError):
            details = error.response.get("Error", {})
            code = str(details.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
            if code == "NoSuchBucket":
                return "bucket does not exist (NoSuchBucket)"
            if code in _DENIED:
                return f"access denied ({code} on {error.operation_name})"
            if code in _BAD_CREDENTIALS:
                return f"credentials refused ({code})"
            return f"S3 answered {code} on {error.operation_name}: {one_line(details.get('Message', ''), 200)}"
        if isinstance(error, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            endpoint = urlsplit(str(error.kwargs.get("endpoint_url", "")))
            return f"cannot reach {endpoint.scheme}://{endpoint.netloc} ({type(error).__name__})"
        if isinstance(error, bx.BotoCoreError):
            return one_line(error, 200)
        return None
