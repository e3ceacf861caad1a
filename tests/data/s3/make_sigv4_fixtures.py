"""Signed S3 requests as boto3 sends them, for src/s3api/sigv4_tests.rs.

Run: python3 -m venv /tmp/v && /tmp/v/bin/pip install boto3 &&
     /tmp/v/bin/python tests/data/s3/make_sigv4_fixtures.py > tests/data/s3/sigv4_boto3.json

The clock is frozen at NOW and nothing is sent: a before-send hook records each request
(method, raw path, raw query, headers) and aborts it. Over http botocore signs the empty
body's sha256; over https it sends UNSIGNED-PAYLOAD, so both endpoints are used.
"""

import datetime
import json
import sys
import urllib.parse

import boto3
import botocore
import botocore.auth
from botocore.config import Config

NOW = datetime.datetime(2026, 12, 4, 3, 30, 0)
KEY_ID = "reader"
SECRET = "reader-secret-0123456789"
KEY = "org/model/dir with space/ü+weights (1).safetensors"

botocore.auth.get_current_datetime = lambda remove_tzinfo=True: NOW


class Captured(Exception):
    pass


def client(endpoint, style):
    c = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            retries={"max_attempts": 1},
        ),
    )
    return c


def record(name, c, call, **kwargs):
    seen = []

    def hook(request, **_):
        seen.append(request)
        raise Captured()

    c.meta.events.register("before-send.s3", hook)
    try:
        getattr(c, call)(**kwargs)
    except Captured:
        pass
    finally:
        c.meta.events.unregister("before-send.s3", hook)
    (req,) = seen
    url = urllib.parse.urlsplit(req.url)
    return {
        "name": name,
        "method": req.method,
        "host": url.netloc,
        "path": url.path,
        "query": url.query,
        "headers": [[k, v.decode() if isinstance(v, bytes) else v] for k, v in req.headers.items()],
    }


def presigned(name, c, call, expires, **kwargs):
    url = urllib.parse.urlsplit(
        c.generate_presigned_url(call, Params=kwargs, ExpiresIn=expires)
    )
    return {
        "name": name,
        "method": "GET",
        "host": url.netloc,
        "path": url.path,
        "query": url.query,
        "headers": [["Host", url.netloc]],
    }


plain = client("http://127.0.0.1:9000", "path")
tls = client("https://s3.airlock.test:9443", "path")
virtual = client("https://s3.airlock.test:9443", "virtual")
fixtures = [
    record("get_object_path_style", plain, "get_object", Bucket="models", Key=KEY),
    record("get_object_unsigned_payload", tls, "get_object", Bucket="models", Key=KEY, Range="bytes=0-9"),
    record("head_object", plain, "head_object", Bucket="models", Key="org/model/config.json"),
    record("head_bucket", plain, "head_bucket", Bucket="models"),
    record(
        "list_objects_v2",
        plain,
        "list_objects_v2",
        Bucket="models",
        Prefix="org/model/dir with space/",
        Delimiter="/",
        MaxKeys=2,
        ContinuationToken="b3JnL21vZGVsL2E+Yg==",
        StartAfter="org/model/a",
    ),
    record("list_objects_v1_virtual_host", virtual, "list_objects", Bucket="models", Prefix="org/", Marker="org/a b"),
    record("list_buckets", plain, "list_buckets"),
    presigned("presigned_get_object", plain, "get_object", 3600, Bucket="models", Key=KEY),
]
json.dump(
    {
        "botocore": botocore.__version__,
        "now": NOW.strftime("%Y%m%dT%H%M%SZ"),
        "access_key_id": KEY_ID,
        "secret": SECRET,
        "requests": fixtures,
    },
    sys.stdout,
    indent=1,
    ensure_ascii=False,
)
print()
