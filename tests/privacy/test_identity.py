"""Identity tokens: real keys, real JWKS files and a real JWKS URL on a local port."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from chatserver.config import Settings, SettingsError
from chatserver.errors import Unauthorized
from chatserver.privacy.identity import (
    JWKS_MIN_REFRESH_SECONDS,
    KEYS_UNAVAILABLE,
    LEEWAY_SECONDS,
    NOT_CONFIGURED,
    OPTIONAL_CLAIM_MAX_CHARS,
    PID_NEEDS_PEPPER,
    Identity,
    IdentityVerifier,
    pid_hash,
)

SITE = "shop-se"
NOW = 1_700_000_000
SECRET = "identity-secret-for-tests-0123456789abcdef"
PEPPER = "pepper-for-tests"
PID = "198001011234"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def claims(**overrides: Any) -> dict[str, Any]:
    """Good claims for SITE at NOW; an override of None removes the claim."""
    base: dict[str, Any] = {"sub": "acct-42", "aud": SITE, "iat": NOW, "exp": NOW + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_token(header: dict[str, Any], payload: Any, hmac_key: bytes | None = None) -> str:
    """A compact JWS built without PyJWT, so it can be anything PyJWT refuses to make."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = b""
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def hs256(secret: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def signed(key: PrivateKey, kid: str | None = "k1", **overrides: Any) -> str:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def jwk(key: PrivateKey, kid: str | None = "k1", **extra: Any) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        entry = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        entry = ECAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        entry["kid"] = kid
    entry.update(extra)
    return entry


def jwks(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


async def refused(verifier: IdentityVerifier, token: str) -> str:
    """The refusal's message, checked not to repeat the token."""
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(token)
    if token:
        assert token not in info.value.message
    return info.value.message


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(params=["RS256", "ES256"])
def key(
    request: pytest.FixtureRequest, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> PrivateKey:
    return rsa_key if request.param == "RS256" else ec_key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hs_verifier(clock: Clock) -> IdentityVerifier:
    return IdentityVerifier(site_id=SITE, secret=SECRET, pid_pepper=PEPPER, clock=clock)


@dataclass
class JwksServer:
    """A real HTTP server handing out one JWKS body, counting the requests."""

    body: bytes = b'{"keys": []}'
    status: int = 200
    requests: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    def serve(self, key: PrivateKey, kid: str = "k1") -> None:
        self.body = jwks(jwk(key, kid))

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.thread is not None:
            self.thread.join()
            self.thread = None


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
                body, status = state.body, state.status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    state.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{state.httpd.server_address[1]}/.well-known/jwks.json"
    # A short poll so that shutdown at teardown returns quickly.
    state.thread = threading.Thread(
        target=state.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    state.thread.start()
    try:
        yield state
    finally:
        state.stop()


# --- HS256 -----------------------------------------------------------------


async def test_hs256_token_gives_every_field_and_only_a_hash_of_the_pid(
    hs_verifier: IdentityVerifier,
) -> None:
    token = hs256(
        name="Anna Andersson",
        email="anna@example.se",
        phone="+46701234567",
        idp="bankid",
        pid=PID,
    )
    identity = await hs_verifier.verify(token)
    expected_hash = hmac.new(PEPPER.encode(), PID.encode(), hashlib.sha256).hexdigest()
    assert identity == Identity(
        sub="acct-42",
        name="Anna Andersson",
        email="anna@example.se",
        phone="+46701234567",
        idp="bankid",
        pid_hash=expected_hash,
        issued_at=NOW,
        expires_at=NOW + 600,
    )
    assert PID not in repr(identity)
    assert PID.encode() not in msgspec.json.encode(identity)


async def test_optional_claims_may_be_absent_null_or_empty(hs_verifier: IdentityVerifier) -> None:
    identity = await hs_verifier.verify(hs256(name=None, email="", phone=None))
    assert (identity.name, identity.email, identity.phone, identity.idp) == (None,) * 4
    assert identity.pid_hash is None


def test_pid_hash_is_hmac_sha256_hex_and_needs_a_pepper() -> None:
    assert (
        pid_hash(PID, PEPPER) == hmac.new(b"pepper-for-tests", PID.encode(), "sha256").hexdigest()
    )
    assert pid_hash(PID, PEPPER) != pid_hash(PID, PEPPER + "x")
    with pytest.raises(ValueError):
        pid_hash(PID, "")


async def test_pid_without_pepper_is_refused(clock: Clock) -> None:
    verifier = IdentityVerifier(site_id=SITE, secret=SECRET, clock=clock)
    assert await refused(verifier, hs256(pid=PID)) == PID_NEEDS_PEPPER
    assert (await verifier.verify(hs256())).pid_hash is None


async def test_unconfigured_server_refuses_every_token() -> None:
    verifier = IdentityVerifier(site_id=SITE)
    assert not verifier.enabled
    assert await refused(verifier, hs256()) == NOT_CONFIGURED


def test_short_secret_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="32 bytes"):
        IdentityVerifier(site_id=SITE, secret="too-short")


async def test_from_settings_reads_site_secret_and_pepper() -> None:
    settings = Settings.from_mapping(
        {"site_id": SITE, "identity_secret": SECRET, "pid_pepper": PEPPER}
    )
    verifier = IdentityVerifier.from_settings(settings)
    assert verifier.enabled
    now = int(time.time())
    identity = await verifier.verify(hs256(iat=now, exp=now + 60, pid=PID))
    assert identity.pid_hash == pid_hash(PID, PEPPER)
    assert not IdentityVerifier.from_settings(Settings.from_mapping()).enabled


# --- time --------------------------------------------------------------------


async def test_expired_beyond_leeway_is_refused(hs_verifier: IdentityVerifier) -> None:
    token = hs256(iat=NOW - 600, exp=NOW - LEEWAY_SECONDS)
    assert await refused(hs_verifier, token) == "the token has expired"


async def test_just_expired_within_leeway_is_accepted(hs_verifier: IdentityVerifier) -> None:
    token = hs256(iat=NOW - 600, exp=NOW - LEEWAY_SECONDS + 1)
    assert (await hs_verifier.verify(token)).expires_at == NOW - LEEWAY_SECONDS + 1


async def test_a_token_expires_as_the_clock_moves(
    hs_verifier: IdentityVerifier, clock: Clock
) -> None:
    token = hs256()
    await hs_verifier.verify(token)
    clock.now += 600 + LEEWAY_SECONDS
    assert await refused(hs_verifier, token) == "the token has expired"


async def test_iat_in_the_future_beyond_leeway_is_refused(hs_verifier: IdentityVerifier) -> None:
    future = NOW + LEEWAY_SECONDS + 1
    assert await refused(hs_verifier, hs256(iat=future, exp=future + 60)) == (
        "the token is issued in the future"
    )
    within = NOW + LEEWAY_SECONDS
    assert (await hs_verifier.verify(hs256(iat=within, exp=within + 60))).issued_at == within


async def test_nbf_in_the_future_is_refused(hs_verifier: IdentityVerifier) -> None:
    token = hs256(nbf=NOW + LEEWAY_SECONDS + 1)
    assert await refused(hs_verifier, token) == "the token is not valid yet"
    await hs_verifier.verify(hs256(nbf=NOW + LEEWAY_SECONDS))


async def test_lifetime_over_one_hour_is_refused(hs_verifier: IdentityVerifier) -> None:
    message = await refused(hs_verifier, hs256(exp=NOW + 3601))
    assert message == "the token is valid for more than one hour"
    assert (await hs_verifier.verify(hs256(exp=NOW + 3600))).expires_at == NOW + 3600


async def test_exp_before_iat_is_refused(hs_verifier: IdentityVerifier) -> None:
    token = hs256(iat=NOW, exp=NOW - 1)
    assert await refused(hs_verifier, token) == "the token expires before it is issued"


# --- claims ------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["sub", "aud", "exp", "iat"])
async def test_missing_required_claim_is_refused(hs_verifier: IdentityVerifier, claim: str) -> None:
    missing: dict[str, Any] = {claim: None}
    token = hs256(**missing)
    assert await refused(hs_verifier, token) == f"the token has no {claim} claim"


async def test_wrong_audience_is_refused(hs_verifier: IdentityVerifier) -> None:
    assert await refused(hs_verifier, hs256(aud="other-shop")) == "the token is not for this site"
    assert await refused(hs_verifier, hs256(aud=["other-shop"])) == "the token is not for this site"
    # RFC 7519 4.1.3: aud may be a list; ours must be in it.
    await hs_verifier.verify(hs256(aud=["other-shop", SITE]))


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("sub", 42, "the sub claim must be a string"),
        ("sub", "", "the sub claim must be a non-empty string"),
        ("sub", "x" * 256, "the sub claim is longer than 255 characters"),
        ("aud", 7, "the token is not for this site"),
        ("name", 123, "the name claim must be a string"),
        ("email", ["anna@example.se"], "the email claim must be a string"),
        ("phone", {"number": "+46"}, "the phone claim must be a string"),
        ("idp", True, "the idp claim must be a string"),
        ("pid", 198001011234, "the pid claim must be a string"),
        ("exp", str(NOW + 600), "the exp claim must be a number of seconds"),
        ("iat", True, "the iat claim must be a number of seconds"),
        ("exp", float("inf"), "the exp claim must be a number of seconds"),
        ("nbf", "soon", "the nbf claim must be a number of seconds"),
    ],
)
async def test_wrong_claim_types_are_refused(
    hs_verifier: IdentityVerifier, claim: str, value: Any, reason: str
) -> None:
    assert await refused(hs_verifier, hs256(**{claim: value})) == reason


@pytest.mark.parametrize(("claim", "limit"), sorted(OPTIONAL_CLAIM_MAX_CHARS.items()))
async def test_optional_claims_have_a_length_limit(
    hs_verifier: IdentityVerifier, claim: str, limit: int
) -> None:
    await hs_verifier.verify(hs256(**{claim: "x" * limit}))
    message = await refused(hs_verifier, hs256(**{claim: "x" * (limit + 1)}))
    assert message == f"the {claim} claim is longer than {limit} characters"


async def test_float_times_are_whole_seconds(hs_verifier: IdentityVerifier) -> None:
    identity = await hs_verifier.verify(hs256(iat=NOW + 0.75, exp=NOW + 600.5))
    assert (identity.issued_at, identity.expires_at) == (NOW, NOW + 600)


# --- malformed and forged ----------------------------------------------------


async def test_oversized_token_is_refused_without_parsing(hs_verifier: IdentityVerifier) -> None:
    # Validly signed, so only the length can be why it is refused.
    token = hs256(padding="y" * 9000)
    assert len(token) > 8192
    assert await refused(hs_verifier, token) == "the token is longer than 8192 characters"
    assert await refused(hs_verifier, "!" * 8193) == "the token is longer than 8192 characters"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "not.a.jwt",
        "...",
        "a.b",
        "🙂.🙂.🙂",
        "\ud800.\udfff.x",
        "eyJhbGciOiJIUzI1NiJ9",
        b64url(b"[1]") + ".e30.",
        b64url(b'{"alg":"HS256"') + ".e30.",
        b64url(b'{"alg":"HS256","kid":5}') + ".e30.",
        "e30.e30.e30",
        b64url(b'{"alg":"HS256"}') + ".!!!!.",
    ],
)
async def test_garbage_is_refused(hs_verifier: IdentityVerifier, token: str) -> None:
    await refused(hs_verifier, token)


async def test_signed_non_object_payload_is_refused(hs_verifier: IdentityVerifier) -> None:
    token = hand_token({"alg": "HS256", "typ": "JWT"}, ["sub"], SECRET.encode())
    assert await refused(hs_verifier, token) == "the token is malformed"


async def test_forged_hs256_signature_is_refused(hs_verifier: IdentityVerifier) -> None:
    forged = hs256(secret="another-secret-that-is-also-long-enough")
    assert await refused(hs_verifier, forged) == "the token's signature does not verify"
    # Someone else's payload under a real signature.
    header, _, signature = hs256().split(".")
    other_payload = b64url(json.dumps(claims(sub="acct-1")).encode())
    tampered = f"{header}.{other_payload}.{signature}"
    assert await refused(hs_verifier, tampered) == "the token's signature does not verify"


async def test_forged_rs256_and_es256_signatures_are_refused(
    tmp_path: Path,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    other_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, "rsa"), jwk(ec_key, "ec")))
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    await verifier.verify(signed(rsa_key, "rsa"))
    await verifier.verify(signed(ec_key, "ec"))
    for token in (signed(other_rsa_key, "rsa"), signed(other_ec_key, "ec")):
        assert await refused(verifier, token) == "the token's signature does not verify"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
async def test_alg_none_is_refused(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, "k1")))
    token = hand_token({"alg": alg, "typ": "JWT", "kid": "k1"}, claims())
    assert token.endswith(".")
    for verifier in (
        IdentityVerifier(site_id=SITE, secret=SECRET, clock=clock),
        IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock),
        IdentityVerifier(site_id=SITE, secret=SECRET, jwks=str(path), clock=clock),
    ):
        assert await refused(verifier, token) == (
            "the token's algorithm is not accepted on this server"
        )


async def test_header_without_alg_is_refused(hs_verifier: IdentityVerifier) -> None:
    token = hand_token({"typ": "JWT"}, claims(), SECRET.encode())
    assert await refused(hs_verifier, token) == (
        "the token's algorithm is not accepted on this server"
    )


async def test_hs256_signed_with_the_public_key_is_refused(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Algorithm confusion: the public key is public, so it must never be an HMAC key."""
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_jwk = json.dumps(jwk(rsa_key, "k1")).encode()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, "k1")))
    both = IdentityVerifier(site_id=SITE, secret=SECRET, jwks=str(path), clock=clock)
    jwks_only = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    await both.verify(signed(rsa_key, "k1"))
    for hmac_key in (public_pem, public_jwk):
        token = hand_token({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), hmac_key)
        assert await refused(both, token) == "the token's signature does not verify"
        assert await refused(jwks_only, token) == (
            "the token's algorithm is not accepted on this server"
        )


async def test_rs256_token_with_only_a_secret_is_refused(
    hs_verifier: IdentityVerifier, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    for token in (signed(rsa_key), signed(ec_key)):
        assert await refused(hs_verifier, token) == (
            "the token's algorithm is not accepted on this server"
        )


async def test_algorithm_must_fit_the_key_type(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, "rsa"), jwk(ec_key, "ec")))
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    for token in (signed(ec_key, "rsa"), signed(rsa_key, "ec")):
        assert await refused(verifier, token) == (
            "the token's algorithm does not fit its signing key"
        )


async def test_jwks_entries_cannot_widen_what_is_accepted(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    """A symmetric, weak, private or mislabelled key in the JWKS is not used."""
    oct_secret = b"a-symmetric-key-published-in-the-jwks!!"
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_entry = RSAAlgorithm.to_jwk(rsa_key, as_dict=True) | {"kid": "private"}
    path = tmp_path / "jwks.json"
    path.write_bytes(
        jwks(
            {"kty": "oct", "kid": "sym", "k": b64url(oct_secret)},
            jwk(weak_key, "weak"),
            private_entry,
            jwk(rsa_key, "labelled-hs256", alg="HS256"),
            jwk(rsa_key, "for-encryption", use="enc"),
            jwk(rsa_key, "k1"),
        )
    )
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    await verifier.verify(signed(rsa_key, "k1"))

    hs_token = hand_token({"alg": "HS256", "kid": "sym"}, claims(), oct_secret)
    assert await refused(verifier, hs_token) == (
        "the token's algorithm is not accepted on this server"
    )
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        weak_token = signed(weak_key, "weak")
    tokens = [weak_token] + [
        signed(rsa_key, kid) for kid in ("sym", "private", "labelled-hs256", "for-encryption")
    ]
    for token in tokens:
        assert await refused(verifier, token) == "the token's signing key is not known"


# --- JWKS file ---------------------------------------------------------------


async def test_rs256_and_es256_via_jwks_file(tmp_path: Path, clock: Clock, key: PrivateKey) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(key, "k1")))
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), pid_pepper=PEPPER, clock=clock)
    assert verifier.enabled
    identity = await verifier.verify(signed(key, "k1", idp="bankid", pid=PID))
    assert (identity.sub, identity.idp) == ("acct-42", "bankid")
    assert identity.pid_hash == pid_hash(PID, PEPPER)


async def test_jwks_file_is_read_at_start(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, "k1")))
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    path.unlink()
    await verifier.verify(signed(rsa_key, "k1"))
    # The file is gone: an unknown kid finds keys unavailable, the known one still works.
    assert await refused(verifier, signed(rsa_key, "k2")) == KEYS_UNAVAILABLE
    await verifier.verify(signed(rsa_key, "k1"))


async def test_single_key_jwks_accepts_a_token_without_kid(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, None)))
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    await verifier.verify(signed(rsa_key, kid=None))

    path.write_bytes(jwks(jwk(rsa_key, "rsa"), jwk(ec_key, "ec")))
    two_keys = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock)
    assert await refused(two_keys, signed(rsa_key, kid=None)) == (
        "the token names no signing key (kid)"
    )


async def test_key_rotation_in_the_jwks_file(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(rsa_key, "old")))
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock, min_refresh_seconds=0)
    assert await refused(verifier, signed(ec_key, "new")) == "the token's signing key is not known"
    path.write_bytes(jwks(jwk(rsa_key, "old"), jwk(ec_key, "new")))
    await verifier.verify(signed(ec_key, "new"))
    await verifier.verify(signed(rsa_key, "old"))


async def test_missing_jwks_file_then_created(
    tmp_path: Path, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    verifier = IdentityVerifier(site_id=SITE, jwks=str(path), clock=clock, min_refresh_seconds=0)
    assert await refused(verifier, signed(rsa_key, "k1")) == KEYS_UNAVAILABLE
    path.write_text("{not json")
    assert await refused(verifier, signed(rsa_key, "k1")) == KEYS_UNAVAILABLE
    path.write_bytes(jwks(jwk(rsa_key, "k1")))
    await verifier.verify(signed(rsa_key, "k1"))


# --- JWKS URL ----------------------------------------------------------------


async def test_rs256_and_es256_via_jwks_url(
    jwks_server: JwksServer, clock: Clock, key: PrivateKey
) -> None:
    jwks_server.serve(key, "k1")
    verifier = IdentityVerifier(site_id=SITE, jwks=jwks_server.url, clock=clock)
    assert jwks_server.requests == 0  # fetched on first need, not while building
    for _ in range(3):
        assert (await verifier.verify(signed(key, "k1"))).sub == "acct-42"
    assert jwks_server.requests == 1


async def test_key_rotation_at_the_jwks_url(
    jwks_server: JwksServer,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.serve(rsa_key, "old")
    verifier = IdentityVerifier(site_id=SITE, jwks=jwks_server.url, clock=clock)
    await verifier.verify(signed(rsa_key, "old"))
    jwks_server.body = jwks(jwk(rsa_key, "old"), jwk(ec_key, "new"))
    clock.now += JWKS_MIN_REFRESH_SECONDS
    await verifier.verify(signed(ec_key, "new", iat=int(clock.now), exp=int(clock.now) + 60))
    assert jwks_server.requests == 2
    await verifier.verify(signed(rsa_key, "old", iat=int(clock.now), exp=int(clock.now) + 60))
    assert jwks_server.requests == 2


async def test_unknown_kid_flood_fetches_at_most_once_per_window(
    jwks_server: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve(rsa_key, "k1")
    verifier = IdentityVerifier(site_id=SITE, jwks=jwks_server.url, clock=clock)
    await verifier.verify(signed(rsa_key, "k1"))
    assert jwks_server.requests == 1

    def bogus(n: int) -> list[str]:
        times = {"iat": int(clock.now), "exp": int(clock.now) + 60}
        return [signed(rsa_key, f"bogus-{i}", **times) for i in range(n)]

    async def flood(tokens: list[str]) -> None:
        results = await asyncio.gather(
            *(verifier.verify(t) for t in tokens), return_exceptions=True
        )
        assert all(isinstance(r, Unauthorized) for r in results)

    # Inside the window of the first fetch: none at all.
    await flood(bogus(50))
    assert jwks_server.requests == 1
    # A new window: one fetch for the whole concurrent flood, then none.
    clock.now += JWKS_MIN_REFRESH_SECONDS
    await flood(bogus(50))
    assert jwks_server.requests == 2
    for token in bogus(20):
        await refused(verifier, token)
    clock.now += JWKS_MIN_REFRESH_SECONDS - 0.5
    await flood(bogus(20))
    assert jwks_server.requests == 2
    clock.now += 0.5
    await flood(bogus(20))
    assert jwks_server.requests == 3
    # The real key never needed any of those fetches.
    await verifier.verify(signed(rsa_key, "k1", iat=int(clock.now), exp=int(clock.now) + 60))
    assert jwks_server.requests == 3


async def test_concurrent_unknown_kids_share_one_fetch_even_without_a_window(
    jwks_server: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve(rsa_key, "k1")
    verifier = IdentityVerifier(
        site_id=SITE, jwks=jwks_server.url, clock=clock, min_refresh_seconds=0
    )
    tokens = [signed(rsa_key, "k1")] * 10 + [signed(rsa_key, f"bogus-{i}") for i in range(10)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, Identity) for r in results[:10])
    assert all(isinstance(r, Unauthorized) for r in results[10:])
    assert jwks_server.requests == 1
    # Sequential unknown kids: with no window each one looks again.
    await refused(verifier, signed(rsa_key, "bogus-a"))
    await refused(verifier, signed(rsa_key, "bogus-b"))
    assert jwks_server.requests == 3


async def test_jwks_url_down_keeps_the_cached_keys(
    jwks_server: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve(rsa_key, "k1")
    verifier = IdentityVerifier(
        site_id=SITE, jwks=jwks_server.url, clock=clock, min_refresh_seconds=0
    )
    await verifier.verify(signed(rsa_key, "k1"))
    jwks_server.stop()
    assert await refused(verifier, signed(rsa_key, "k2")) == KEYS_UNAVAILABLE
    await verifier.verify(signed(rsa_key, "k1"))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, b"down for maintenance"),
        (404, b"not found"),
        (200, b"<html>not json</html>"),
        (200, b'{"keys": []}'),
        (200, b'{"keys": "none"}'),
        (200, b"[]"),
        (200, b'{"keys": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'),
    ],
)
async def test_bad_jwks_responses_make_keys_unavailable_until_fixed(
    jwks_server: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey, status: int, body: bytes
) -> None:
    jwks_server.status, jwks_server.body = status, body
    verifier = IdentityVerifier(
        site_id=SITE, jwks=jwks_server.url, clock=clock, min_refresh_seconds=0
    )
    assert await refused(verifier, signed(rsa_key, "k1")) == KEYS_UNAVAILABLE
    assert jwks_server.requests == 1
    jwks_server.status = 200
    jwks_server.serve(rsa_key, "k1")
    await verifier.verify(signed(rsa_key, "k1"))
    assert jwks_server.requests == 2


async def test_unreachable_jwks_url_is_retried_only_after_the_window(
    jwks_server: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.status = 503
    verifier = IdentityVerifier(site_id=SITE, jwks=jwks_server.url, clock=clock)
    for _ in range(5):
        assert await refused(verifier, signed(rsa_key, "k1")) == KEYS_UNAVAILABLE
    assert jwks_server.requests == 1
    jwks_server.status = 200
    jwks_server.serve(rsa_key, "k1")
    clock.now += JWKS_MIN_REFRESH_SECONDS
    await verifier.verify(signed(rsa_key, "k1", iat=int(clock.now), exp=int(clock.now) + 60))
    assert jwks_server.requests == 2
