"""AudioHook connection auth and RFC 8941 parsing on hostile headers: a verdict, never a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fuzzwire import FUZZ, control_text
from voicetriage.protocols.audiohook_auth import AudioHookAuth, sign
from voicetriage.protocols.structured_fields import SfError, parse_dictionary

SESSION = "30b0e395-84d3-4570-ac13-9a62d8f514c0"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
KEY, SECRET = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh", "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
VALUES = {"@request-target": "/audiohook", "@authority": "example.com", "audiohook-organization-id": ORG,
          "audiohook-session-id": SESSION, "audiohook-correlation-id": "e160e428-53e2-487c-977d-96989bf5c99d",
          "x-api-key": KEY}
SIGNED = sign(api_key=KEY, secret_b64=SECRET, values=VALUES, created=1000, expires=1010,
              nonce="VGhpc0lzQVVuaXF1ZU5vbmNl")

sf_chars = st.sampled_from(list('sig1=();:?,"\\ -.*_abcdefxyz0123456789+/=\t') + ["keyid", "alg", "created", ":AA==:"])
sf_text = st.one_of(st.lists(sf_chars, max_size=60).map("".join), control_text, st.text(max_size=80),
                    st.sampled_from(list(SIGNED.values())))


@FUZZ
@given(sf_text)
def test_structured_fields_parse_or_sferror(text):
    try:
        parsed = parse_dictionary(text)
    except SfError:
        return
    assert isinstance(parsed, dict)


def mutate_signed(draw_text: str, which: str) -> dict[str, str]:
    headers = {"Host": "example.com", "Audiohook-Organization-Id": ORG, "Audiohook-Session-Id": SESSION,
               "Audiohook-Correlation-Id": VALUES["audiohook-correlation-id"], "X-API-KEY": KEY, **SIGNED}
    headers[which] = draw_text
    return headers


@FUZZ
@given(sf_text, st.sampled_from(["Signature", "Signature-Input", "X-API-KEY", "Audiohook-Session-Id",
                                 "Audiohook-Organization-Id", "Host"]),
       st.text(max_size=40))
def test_auth_check_gives_a_verdict(text, which, target):
    auth = AudioHookAuth({KEY: SECRET}, clock=lambda: 1001.0)
    result = auth.check("GET", target or "/audiohook", mutate_signed(text, which))
    assert result.ok in (True, False)
    assert result.ok or result.status in (400, 401)
    assert len(result.reason) <= 400 and result.reason.isprintable()  # it is logged


@FUZZ
@given(st.sampled_from(["alg", "keyid", "nonce", "tag", "created", "expires", "x"]),
       st.sampled_from(['"' + "a" * 5000 + '"', "?1", "-5", "12", "tok", ":AAAA:", '"\\"']),
       st.sampled_from(['"' + "n" * 5000 + '"', '"@authority"', "@x", '"x-api-key";p']))
def test_signature_parameters_of_any_size(name, value, component):
    headers = mutate_signed(f'sig1=({component} "@request-target");{name}={value};keyid="{KEY}"', "Signature-Input")
    result = AudioHookAuth({KEY: SECRET}, clock=lambda: 1001.0).check("GET", "/audiohook", headers)
    assert not result.ok and len(result.reason) <= 400 and result.reason.isprintable()


def test_the_unmutated_request_is_accepted():
    auth = AudioHookAuth({KEY: SECRET}, clock=lambda: 1001.0)
    assert auth.check("GET", "/audiohook", mutate_signed(SIGNED["Signature"], "Signature")).ok
