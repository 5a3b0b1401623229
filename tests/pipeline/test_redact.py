"""pipeline.redact: secrets never leave the web process; POST data stays small and Mongo-safe."""

from __future__ import annotations

import json

import pytest

from pipeline.events import InvalidEvent, new_event_id, validate_page_view
from pipeline.redact import (
    MAX_FIELDS,
    MAX_VALUE,
    REDACTED,
    looks_like_card_number,
    redact_mapping,
    redact_post_data,
)

VISA_TEST = "4111111111111111"  # Luhn-valid test card numbers
MASTERCARD_TEST = "5555 5555 5555 4444"
AMEX_TEST = "3782-822463-10005"


def form(**fields: str | list[str]) -> list[tuple[str, list[str]]]:
    return [(k, v if isinstance(v, list) else [v]) for k, v in fields.items()]


@pytest.mark.parametrize(
    "name",
    [
        "password", "password1", "password2", "old_password", "new_pwd", "Password",
        "token", "access_token", "csrfmiddlewaretoken", "api_key", "apiKey", "API_KEY",
        "secret", "client_secret", "card_number", "cardNumber", "cc_num", "cvv", "cvc",
        "session_id", "otp", "pin", "auth", "iban", "ssn", "signature",
    ],
)
def test_secret_field_names_are_redacted(name: str) -> None:
    out = redact_post_data(form(**{name: "hunter2-very-secret"}))
    assert out == {name: REDACTED}
    assert "hunter2" not in json.dumps(out)


def test_all_values_of_repeated_secret_field_are_redacted() -> None:
    out = redact_post_data([("password", ["a1", "b2", "c3"])])
    assert out == {"password": [REDACTED, REDACTED, REDACTED]}


@pytest.mark.parametrize("number", [VISA_TEST, MASTERCARD_TEST, AMEX_TEST, "6011 1111 1111 1117"])
def test_luhn_valid_card_number_in_innocent_field_is_redacted(number: str) -> None:
    assert looks_like_card_number(number)
    out = redact_post_data(form(comment=number, name="Asha"))
    assert out == {"comment": REDACTED, "name": "Asha"}


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111112",  # Luhn fails
        "411111111111",  # 12 digits: too short
        "41111111111111111111",  # 20 digits: too long
        "4111-1111-1111-111a",
        "phone 9876543210",
        "2024-01-15",
    ],
)
def test_non_card_numbers_are_kept(value: str) -> None:
    assert not looks_like_card_number(value)
    assert redact_post_data(form(comment=value)) == {"comment": value}


def test_normal_values_are_kept() -> None:
    fields = {
        "username": "asha",
        "email": "asha@example.org",
        "search": "Basics of Shell Scripting",
        "foss": "BASH",
        "language": "English",
        "q": "python",
        "comment": "Great tutorial! 10/10",
        "phone": "9876543210",
    }
    assert redact_post_data(form(**fields)) == fields


def test_repeated_fields_become_lists_single_fields_strings() -> None:
    out = redact_post_data([("tag", ["a", "b"]), ("one", ["x"])])
    assert out == {"tag": ["a", "b"], "one": "x"}


def test_values_are_capped() -> None:
    out = redact_post_data(form(comment="y" * (MAX_VALUE * 3)), max_bytes=10_000)
    assert out["comment"] == "y" * MAX_VALUE
    assert "_truncated" not in out


def test_size_cap_sets_truncated_and_drops_the_rest() -> None:
    fields = [(f"field{i:02d}", ["v" * 100]) for i in range(50)]
    out = redact_post_data(fields, max_bytes=1000)
    assert out["_truncated"] is True
    kept = [k for k in out if k != "_truncated"]
    # in order, a prefix of the form, and roughly max_bytes worth of it
    assert kept == [f"field{i:02d}" for i in range(len(kept))]
    assert 8 <= len(kept) <= 10
    assert len(json.dumps(out)) < 1000 + MAX_VALUE + 200


def test_under_the_cap_nothing_truncated() -> None:
    out = redact_post_data(form(a="1", b="2"), max_bytes=4096)
    assert "_truncated" not in out


def test_repeated_field_cannot_bypass_size_cap() -> None:
    # Regression: all values of one repeated field were kept whatever max_bytes said.
    out = redact_post_data([("tags", ["x" * 500] * 1000)], max_bytes=4096)
    assert out["_truncated"] is True
    assert 1 <= len(out["tags"]) <= 9
    assert len(json.dumps(out)) < 4096 + MAX_VALUE + 200


def test_field_count_is_capped() -> None:
    fields = [(f"f{i}", ["1"]) for i in range(MAX_FIELDS + 20)]
    out = redact_post_data(fields, max_bytes=1_000_000)
    assert out["_truncated"] is True
    assert len(out) == MAX_FIELDS + 1


def test_uploaded_files_only_as_names_and_sizes() -> None:
    files = [("avatar", [("me.png", 12345)]), ("docs", [("a.pdf", 1), ("b.pdf", 2)])]
    out = redact_post_data(form(title="hello"), files)
    assert out == {
        "title": "hello",
        "avatar": [{"file_name": "me.png", "size": 12345}],
        "docs": [{"file_name": "a.pdf", "size": 1}, {"file_name": "b.pdf", "size": 2}],
    }


def test_uploaded_file_name_is_capped() -> None:
    out = redact_post_data([], [("f", [("n" * 2000 + ".txt", 3)])])
    assert out["f"][0]["file_name"] == "n" * MAX_VALUE


@pytest.mark.parametrize(
    ("key", "safe"),
    [("user.name", "user_name"), ("$where", "_where"), ("$a.b.c", "_a_b_c"), ("a$b", "a$b")],
)
def test_unsafe_keys_are_made_safe(key: str, safe: str) -> None:
    out = redact_post_data(form(**{key: "v"}), [(key + "_file", [("x", 1)])])
    assert out[safe] == "v"
    assert out[safe + "_file"] == [{"file_name": "x", "size": 1}]
    assert all(not k.startswith("$") and "." not in k for k in out)


def test_redacted_output_passes_event_validation() -> None:
    files = [("up.load", [("x.txt", 1)])]
    post = redact_post_data(form(**{"$x": "1", "a.b": "2", "password": "p", "note": "4111 1111 1111 1111"}), files)
    raw = {"event_id": new_event_id(), "path_info": "/", "visited_by": "AnonymousUser", "datetime": 1.0,
           "post_data": post}
    try:
        doc = validate_page_view(raw)
    except InvalidEvent as exc:  # pragma: no cover - shows the reason on failure
        pytest.fail(f"redacted post data rejected: {exc}")
    assert doc["post_data"] == {"_x": "1", "a_b": "2", "password": REDACTED, "note": REDACTED,
                                "up_load": [{"file_name": "x.txt", "size": 1}]}


def test_redact_mapping() -> None:
    out = redact_mapping({"password": "p", "count": 3, "tags": ["a", 2], "card": VISA_TEST, "name": "x"})
    assert out == {"password": REDACTED, "count": "3", "tags": ["a", "2"], "card": REDACTED, "name": "x"}


def test_empty_form() -> None:
    assert redact_post_data([]) == {}


@pytest.mark.parametrize("name", ["keyword", "author", "monkey", "turkey_count"])
def test_words_merely_containing_key_or_auth_are_kept(name):
    assert redact_post_data([(name, ["visible"])])[name] == "visible"


@pytest.mark.parametrize("name", ["key", "api_key", "apikey", "private-key", "key_id", "authorization"])
def test_key_and_auth_fields_are_redacted(name):
    assert redact_post_data([(name, ["hidden"])])[name] == REDACTED


# ---------------------------------------------------------------- issue 11: broader names, detectors

# Every name the issue found in clear, and each pattern family in the spellings forms use.
SECRET_NAMES = [
    "pw", "PW", "new_pw", "security_code", "securityCode", "security-code", "credentials", "credential",
    "accessKey", "access_key", "AccessKey", "jwt", "JWT", "id_jwt", "bearer", "bearer_token", "mfa_code",
    "mfaCode", "verification_code", "verificationCode", "security_answer", "securityAnswer",
    "secret_answer", "passwd", "pass", "pass_word", "newpassword", "Passphrase", "passcode", "pin_code",
    "pinNumber", "otp", "otpCode", "totp", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
    "x-goog-signature", "AWSAccessKeyId", "id_token", "idToken", "refresh-token", "authToken",
    "oauth_verifier", "Authorization", "authentication_code", "session", "sessionid", "PHPSESSID", "sid",
    "sig", "key", "KEY", "private_key", "secretKey", "client_secret", "code", "cc-number", "ccNum",
    "cvv2", "csc", "iban", "ssn", "uidb64", "ticket", "hmac", "nonce", "xsrf_token", "cookie",
    "account_number", "routing-number",
]
KEPT_NAMES = [
    "username", "email", "search", "q", "foss", "language", "comment", "phone", "name", "title",
    "keyword", "keywords", "author", "authors", "author_name", "monkey", "turkey_count", "country_code",
    "countryCode", "zip_code", "postal-code", "language_code", "lang_code", "currency_code", "zipcode",
    "postcode", "pincode", "passenger", "compass", "state", "redirect_uri", "next", "page", "sort",
    "tag", "t", "rating", "sessions_count", "description", "spinner",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_broader_secret_names_are_redacted(name: str) -> None:
    assert redact_post_data(form(**{name: "s3cr3t value"})) == {name: REDACTED}


@pytest.mark.parametrize("name", KEPT_NAMES)
def test_innocent_names_are_kept(name: str) -> None:
    assert redact_post_data(form(**{name: "visible"})) == {name: "visible"}


JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFzaGEifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("4111.1111.1111.1111", REDACTED),  # dots, the issue's finding
        ("4111 1111-1111.1111", REDACTED),
        ("pay with 4111 1111 1111 1111 please", f"pay with {REDACTED} please"),
        ("card:5555555555554444.", f"card:{REDACTED}."),
        ("call 98765 4111 1111 1111 1111 now", f"call 98765 {REDACTED} now"),
        ("amex 3782-822463-10005 and visa 4111111111111111", f"amex {REDACTED} and visa {REDACTED}"),
        (f"token is {JWT} ok", f"token is {REDACTED} ok"),
        (JWT, REDACTED),
        ("my key sk_live_4eC39HqLyjWDarjtT1zdp7dc", f"my key {REDACTED}"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", REDACTED),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", REDACTED),
        ("sha da39a3ee5e6b4b0d3255bfef95601890afd80709", f"sha {REDACTED}"),
        ("aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Q=", REDACTED),
    ],
)
def test_secret_values_in_innocent_fields_are_redacted_in_place(value: str, kept: str) -> None:
    assert redact_post_data(form(comment=value)) == {"comment": kept}


@pytest.mark.parametrize(
    "value",
    [
        "4111.1111.1111.1112",  # Luhn fails
        "2024-01-15 10:30", "ISBN 978-3-16-148410-0", "3.14159265358979323846", "+91 98765 43210",
        "Python3-Basics-Part2-English-Version", "Getting-Started-With-IPython-Part1-Of3",
        "/watch/BASH/Basics-of-Shell-Scripting/English/", "IMG_20240115_123456_HDR_final_v2.jpg",
        "abcdefghijklmnopqrstuvwxyz0123456789", "ORD-2024-000123-XYZ-ABCD-EFGH",
        "eyJust a word", "The quick brown fox jumps over the lazy dog 1234 times",
    ],
)
def test_ordinary_values_are_kept(value: str) -> None:
    assert redact_post_data(form(comment=value)) == {"comment": value}


def test_a_card_number_across_the_value_cap_is_not_half_kept() -> None:
    value = "x" * (MAX_VALUE - 8) + " 4111 1111 1111 1111"
    kept = redact_post_data(form(comment=value), max_bytes=10_000)["comment"]
    assert "4111" not in kept and len(kept) == MAX_VALUE


def test_allow_list_keeps_only_named_fields_and_still_redacts_them() -> None:
    fields = form(rating="5", comment="card 4111111111111111", email="a@example.org", password="p")
    out = redact_post_data(fields, [("upload", [("cv.pdf", 10)])], allow={"rating", "comment", "password"})
    assert out == {"rating": "5", "comment": f"card {REDACTED}", "password": REDACTED, "_omitted": 2}


def test_allow_list_for_mappings() -> None:
    assert redact_mapping({"a": 1, "b": 2}, allow=("a",)) == {"a": "1", "_omitted": 1}
