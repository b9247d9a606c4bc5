"""AWS Signature Version 4 against AWS's published examples, and AWS IoT Core's presigned WebSocket URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from mqttchat.cloud.sigv4 import (
    EMPTY_SHA256,
    AwsCredentials,
    authorization_header,
    canonical_request,
    iot_websocket_path,
    presign,
    signing_key,
)

# The signature test suite's credentials and time (AWS General Reference, "Signature Version 4 test suite").
SUITE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_DATE = "20150830T123600Z"
SUITE_HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": SUITE_DATE}
# The S3 documentation's examples ("Signature calculations for the Authorization header", "query parameters").
S3 = AwsCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_derived_signing_key() -> None:
    """AWS's example of the derived key (IAM, us-east-1, 2012-02-15)."""
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_suite_get_vanilla() -> None:
    header = authorization_header(SUITE, SUITE_DATE, "us-east-1", "service", "GET", "/", [], SUITE_HEADERS)
    assert header == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_suite_get_vanilla_query_order() -> None:
    """get-vanilla-query-order-key-case: parameters sorted by name whatever order they come in."""
    params = [("Param2", "value2"), ("Param1", "value1")]
    header = authorization_header(SUITE, SUITE_DATE, "us-east-1", "service", "GET", "/", params, SUITE_HEADERS)
    assert header.endswith("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    request, _ = canonical_request("GET", "/", params, SUITE_HEADERS, EMPTY_SHA256)
    assert request.split("\n")[2] == "Param1=value1&Param2=value2"


def test_s3_get_object_example() -> None:
    headers = {
        "Host": "examplebucket.s3.amazonaws.com",
        "Range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
    }
    header = authorization_header(S3, "20130524T000000Z", "us-east-1", "s3", "GET", "/test.txt", [], headers)
    assert header == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_s3_presigned_url_example() -> None:
    """The query-string form, which AWS IoT Core's WebSocket URL uses."""
    url = presign(
        S3, "20130524T000000Z", "us-east-1", "s3", "examplebucket.s3.amazonaws.com", "/test.txt",
        expires=86400, payload_hash="UNSIGNED-PAYLOAD",
    )  # fmt: skip
    assert url == (
        "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_iot_websocket_url_adds_the_session_token_after_signing() -> None:
    endpoint = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
    plain = iot_websocket_path(SUITE, "eu-west-1", endpoint, SUITE_DATE)
    with_token = iot_websocket_path(
        AwsCredentials(SUITE.access_key, SUITE.secret_key, "tok/en+=="), "eu-west-1", endpoint, SUITE_DATE
    )
    path, _, query = plain.partition("?")
    assert path == "/mqtt"
    params = dict(parse_qsl(query))
    assert params["X-Amz-Credential"] == "AKIDEXAMPLE/20150830/eu-west-1/iotdevicegateway/aws4_request"
    assert params["X-Amz-SignedHeaders"] == "host"
    # AWS IoT Core checks the signature without the token, which follows it: the signature is the same.
    assert with_token == plain + "&X-Amz-Security-Token=tok%2Fen%2B%3D%3D"
    # The signature is that of the canonical request of GET /mqtt with those parameters and the host header.
    signed = presign(SUITE, SUITE_DATE, "eu-west-1", "iotdevicegateway", endpoint, "/mqtt")
    assert urlsplit(signed).query == query
