"""Parses the golden S3 documents in tests/data/s3/xml/ with botocore's own response
parser and the list-decoding handlers boto3 runs (it sends encoding-type=url on every
listing and decodes the answer), and checks what a boto3 user would get back.

Run: /tmp/v/bin/python tests/data/s3/check_xml_with_botocore.py   (prints OK per file)
"""

import datetime
import pathlib

import botocore.session
from botocore.handlers import (
    decode_list_object,
    decode_list_object_v2,
    parse_get_bucket_location,
)
from botocore.parsers import RestXMLParser

HERE = pathlib.Path(__file__).parent / "xml"
S3 = botocore.session.get_session().get_service_model("s3")
WHEN = datetime.datetime(2026, 12, 4, 3, 30, 0, 123000, tzinfo=datetime.timezone.utc)
ODD_KEYS = [
    "org/m/dir with space/ü+w (1).bin",
    "org/m/a&b<c>\"d'e%2F.txt",
    "org/m/tab\there",
]


def parse(name, operation, status=200):
    body = (HERE / f"{name}.xml").read_bytes()
    response = {"status_code": status, "headers": {}, "body": body}
    shape = S3.operation_model(operation).output_shape
    return RestXMLParser().parse(response, shape)


def check_contents(parsed, owner):
    assert [c["Key"] for c in parsed["Contents"]] == ODD_KEYS, parsed["Contents"]
    for i, c in enumerate(parsed["Contents"]):
        assert c["LastModified"] == WHEN, c
        assert c["ETag"] == '"' + "ab" * (16 + i) + '-1"', c
        assert c["Size"] == 10 + i, c
        assert c["StorageClass"] == "STANDARD", c
        assert ("Owner" in c) == owner, c


p = parse("list_buckets", "ListBuckets")
assert [b["Name"] for b in p["Buckets"]] == ["datasets", "models"], p
assert p["Buckets"][0]["CreationDate"] == WHEN
assert p["Owner"] == {"ID": "airlock", "DisplayName": "airlock"}, p
print("OK list_buckets")



class Body:
    """What parse_get_bucket_location reads of a response."""

    def __init__(self, name):
        self.content = (HERE / f"{name}.xml").read_bytes()
        self.raw = True


def location(name):
    parsed = {}
    parse_get_bucket_location(parsed, Body(name))
    return parsed["LocationConstraint"]


assert location("location_us_east_1") is None
assert location("location_eu_west_1") == "eu-west-1"
print("OK location")

p = parse("list_v2_url", "ListObjectsV2")
decode_list_object_v2(p, {"encoding_type_auto_set": True})
check_contents(p, owner=False)
assert p["Prefix"] == "org/m/" and p["Delimiter"] == "/" and p["StartAfter"] == "org/m/a b", p
assert p["CommonPrefixes"] == [{"Prefix": "org/m/sub dir+x/"}], p
assert p["KeyCount"] == 4 and p["MaxKeys"] == 1000 and p["IsTruncated"] is True, p
assert p["ContinuationToken"] == "b3JnL20vYQ==", p
assert p["NextContinuationToken"] == "b3JnL20vdGFi+/=", p
print("OK list_v2_url")

p = parse("list_v2_plain", "ListObjectsV2")
check_contents(p, owner=True)
assert p["IsTruncated"] is False and "NextContinuationToken" not in p, p
print("OK list_v2_plain")

for name, encoded in [("list_v1_url", True), ("list_v1_plain", False)]:
    p = parse(name, "ListObjects")
    decode_list_object(p, {"encoding_type_auto_set": encoded})
    check_contents(p, owner=True)
    assert p["Marker"] == "org/a b" and p["NextMarker"] == "org/m/tab\there", p
    assert p["CommonPrefixes"] == [{"Prefix": "org/m/"}], p
    print("OK", name)

body = (HERE / "error_no_such_key.xml").read_bytes()
error = RestXMLParser().parse(
    {"status_code": 404, "headers": {}, "body": body},
    S3.operation_model("GetObject").output_shape,
)["Error"]
assert error["Code"] == "NoSuchKey" and error["Message"] == "The specified key does not exist.", error
print("OK error_no_such_key")
