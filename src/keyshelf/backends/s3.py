"""The S3 backend: ``s3://bucket/prefix`` on AWS S3 or any S3-compatible service.

Needs the ``s3`` extra (``pip install 'keyshelf[s3]'``: obstore, whose Rust
client has a native sync and a native async API and conditional puts);
it is imported only when such a URL is opened, so ``import keyshelf`` never
needs it.

URL options (query parameters or keyword arguments of ``open``):

==================== ============= ==================================================
option               default       meaning
==================== ============= ==================================================
region               (environment) AWS region (``AWS_REGION``/``AWS_DEFAULT_REGION``,
                                   else ``us-east-1``)
endpoint_url         (AWS)         URL of an S3-compatible service
path_style           see below     ``true``: ``endpoint/bucket/key`` addressing;
                                   default true with ``endpoint_url``, else false
profile              (none)        a profile of ``~/.aws/config`` (needs boto3)
aws_access_key_id    (environment) explicit credentials (else the standard AWS
aws_secret_access_key              environment variables, web identity, container
aws_session_token                  and instance credentials)
timeout              10            seconds a request may take
connect_timeout      5             seconds to connect
retries              2             retries of a request that failed in transit
                                   (5xx, dropped connection, timeout)
conflict_retries     64            attempts of a read-modify-write (or of a
                                   whole batch) that keeps meeting concurrent
                                   writers
create               true          false: the prefix must hold a store already
readonly             false         true: every write raises ReadOnlyStoreError
==================== ============= ==================================================

Opening makes one LIST request: an unreachable service raises
:class:`BackendUnavailableError`, a missing bucket
:class:`StoreNotFoundError`, refused credentials :class:`InvalidURLError`;
keyshelf never creates buckets. See :mod:`._s3_async` for the guarantees and
``docs/s3.md`` for the layout and the capability table.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from urllib.parse import SplitResult, unquote

from obstore import exceptions as obstore_errors

from .._show import show
from ..errors import BackendError, BackendUnavailableError, InvalidURLError, StoreNotFoundError
from ..options import MAX_SECONDS, as_bool, as_number, as_str, refuse_unknown
from ._s3_io import S3IO, S3Settings

__all__ = ["create", "parse"]


def parse(url: SplitResult, options: dict[str, Any]) -> S3Settings:
    """Check the URL and options; raise InvalidURLError for anything unusable."""
    # The query string has been read into ``options`` already.
    if url.fragment:
        raise InvalidURLError("s3:// URLs take no #fragment")
    bucket = unquote(url.netloc)
    if not bucket or "@" in bucket or ":" in bucket:
        raise InvalidURLError(
            f"s3:// URL needs a bucket name and nothing else before the path, "
            f"got {show(url.netloc)}"
        )
    as_str("bucket", bucket)
    segments = [s for s in unquote(url.path).split("/") if s]
    for segment in segments:
        as_str("prefix", segment)
        if segment in (".", "..") or any(not c.isprintable() for c in segment):
            raise InvalidURLError(f"s3:// prefix segment {show(segment)} cannot be used")
    root = "".join(f"{s}/" for s in segments)

    config: dict[str, Any] = {}
    region = options.pop("region", None) or os.environ.get("AWS_REGION")
    region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config["region"] = as_str("region", region)
    endpoint = options.pop("endpoint_url", None)
    if endpoint is not None:
        endpoint = as_str("endpoint_url", endpoint).rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise InvalidURLError(
                f"Option endpoint_url must be an http(s) URL, got {show(endpoint)}"
            )
        config["endpoint"] = endpoint
    path_style = as_bool("path_style", options.pop("path_style", endpoint is not None))
    config["virtual_hosted_style_request"] = not path_style
    keys = {
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
        "aws_session_token": "session_token",
    }
    for option, name in keys.items():
        if option in options:
            config[name] = as_str(option, options.pop(option))
    if ("access_key_id" in config) != ("secret_access_key" in config):
        raise InvalidURLError("Options aws_access_key_id and aws_secret_access_key go together")
    provider = None
    profile = options.pop("profile", None)
    if profile is not None:
        provider = _profile_provider(as_str("profile", profile))
    timeout = as_number("timeout", options.pop("timeout", 10.0), maximum=MAX_SECONDS)
    connect = as_number("connect_timeout", options.pop("connect_timeout", 5.0), maximum=MAX_SECONDS)
    retries = as_number("retries", options.pop("retries", 2), integer=True, minimum=-1, maximum=100)
    conflicts = as_number(
        "conflict_retries", options.pop("conflict_retries", 64), integer=True, maximum=10_000
    )
    create = as_bool("create", options.pop("create", True))
    readonly = as_bool("readonly", options.pop("readonly", False))
    refuse_unknown("s3", options)
    client_options: dict[str, Any] = {
        "timeout": timedelta(seconds=timeout),
        "connect_timeout": timedelta(seconds=connect),
        "allow_http": bool(endpoint and endpoint.startswith("http://")),
    }
    retry_config: dict[str, Any] = {
        "max_retries": retries,
        # Bounds the whole request, retries included: an outage surfaces within it.
        "retry_timeout": timedelta(seconds=timeout),
        "backoff": {
            "init_backoff": timedelta(milliseconds=50),
            "max_backoff": timedelta(seconds=1),
            "base": 2,
        },
    }
    where = f"s3://{bucket}/{root}" + (f" at {endpoint}" if endpoint else "")
    return S3Settings(
        bucket=bucket,
        root=root,
        location=where,
        config=config,
        client_options=client_options,
        retry_config=retry_config,
        credential_provider=provider,
        conflict_retries=conflicts,
        create=create,
        readonly=readonly,
    )


def _profile_provider(profile: str) -> Any:
    """Credentials of an AWS profile, through boto3's credential chain."""
    try:
        import boto3  # type: ignore[import-untyped]
        import botocore.exceptions  # type: ignore[import-untyped]
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError as exc:
        raise ImportError(
            "The s3:// option profile needs boto3 to read ~/.aws/config: pip install boto3"
        ) from exc
    try:
        return Boto3CredentialProvider(boto3.Session(profile_name=profile))
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise InvalidURLError(f"Cannot use AWS profile {profile!r}: {exc}") from exc


def probe(settings: S3Settings) -> None:
    """One LIST request: the service answers, the bucket exists, the credentials work.

    With ``create=False`` (or ``readonly=True``) the prefix must hold a store
    already: an empty one raises StoreNotFoundError.
    """
    io = S3IO(settings)
    try:
        first = next(iter(io.pages(settings.root.rstrip("/") or "", None)), None)
        if not first and not (settings.create and not settings.readonly):
            raise StoreNotFoundError(
                f"S3 {settings.location} holds no keyshelf store "
                f"(opened with {'readonly=True' if settings.readonly else 'create=False'}: "
                "nothing created)"
            )
    except StoreNotFoundError:
        raise
    except BackendError as exc:
        cause = exc.__cause__ or exc
        text = str(cause)
        if "NoSuchBucket" in text or isinstance(cause, obstore_errors.NotFoundError):
            raise StoreNotFoundError(
                f"S3 bucket {settings.bucket!r} does not exist ({settings.location}); "
                "keyshelf never creates buckets"
            ) from exc
        if isinstance(
            cause, obstore_errors.PermissionDeniedError | obstore_errors.UnauthenticatedError
        ) or any(word in text for word in ("AccessDenied", "InvalidAccessKeyId", "Signature")):
            raise InvalidURLError(
                f"S3 {settings.location} refused the credentials: {text}"
            ) from exc
        if isinstance(exc, BackendUnavailableError):
            raise BackendUnavailableError(
                f"Cannot reach S3 {settings.location}: {text}"
            ) from exc.__cause__
        raise


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``s3://`` URLs: validate, check the bucket once, return the backend."""
    settings = parse(url, options)
    probe(settings)
    if asynchronous:
        from ._s3_async import AsyncS3Backend

        return AsyncS3Backend(settings)
    from ._s3_sync import S3Backend

    return S3Backend(settings)
