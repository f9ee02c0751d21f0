#!/usr/bin/env python3
"""Interoperability check with code nobody here wrote.

Starts the real `portcullis` binary on a free loopback port with a fresh SQLite
database, registers clients with the CLI, then:
  * Authlib finds the token endpoint by discovery and gets a token with
    client_credentials (client_secret_basic and client_secret_post);
  * PyJWT (with `cryptography`) verifies each JWT against the published JWKS,
    for every algorithm Portcullis signs with (EdDSA, ES256, RS256, PS256);
  * Authlib introspects and revokes, and the revocation shows at once;
  * Authlib, as an OpenID Connect relying party, signs a user in with the
    authorization code flow and PKCE S256 found by discovery (a `requests`
    session plays the browser on the login and consent pages), validates the ID
    token with its own CodeIDToken rules (signature by JWKS, iss, aud, nonce,
    at_hash, exp), reads /userinfo, refreshes (rotation) and sees reuse refused;
  * openapi-spec-validator accepts the admin API's OpenAPI 3.1 document;
  * a webhook receiver built on Python's http.server gets the revocations, and the
    verification recipe printed in the README (executed from the README itself)
    accepts their signatures and refuses a tampered body or an old timestamp.

Usage: interop.py PATH_TO_PORTCULLIS_BINARY
"""

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import jwt  # PyJWT
from openapi_spec_validator import validate as validate_openapi
import requests
from authlib.integrations.requests_client import OAuth2Session

ALGS = ["EdDSA", "ES256", "RS256", "PS256"]
passed, failed = 0, 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_verify():
    """The webhook verification function exactly as the README documents it."""
    readme = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")).read()
    block = readme.split("Verifying a delivery", 1)[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    scope = {}
    exec(code, scope)  # noqa: S102 - our own documentation, on purpose
    return scope["verify"]


def start_receiver():
    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, got


def field(html, name):
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    return m.group(1).replace("&quot;", '"').replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") if m else None


def relying_party(meta, rp, issuer):
    """Authlib as an OpenID Connect RP: code + PKCE by discovery, ID token validated."""
    from authlib.common.security import generate_token
    from authlib.jose import JsonWebKey, jwt as ajwt
    from authlib.oidc.core import CodeIDToken

    for k in ["authorization_endpoint", "userinfo_endpoint", "end_session_endpoint"]:
        check(f"discovery lists {k}", meta.get(k, "").startswith(issuer), meta.get(k))
    check("discovery: S256 only", meta.get("code_challenge_methods_supported") == ["S256"])
    session = OAuth2Session(rp["client_id"], rp["client_secret"], scope="openid profile email offline_access read",
                            redirect_uri="https://rp.test/cb", code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(64)
    nonce = generate_token(20)
    uri, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    browser = requests.Session()
    r = browser.get(uri, allow_redirects=False)
    check("authorize sends a signed-out user to the login page", r.status_code == 303 and r.headers["location"].startswith("/login?"), r.headers.get("location"))
    login = browser.get(issuer + r.headers["location"])
    check("login page has labelled fields", 'for="username"' in login.text and 'for="password"' in login.text)
    r = browser.post(f"{issuer}/login", data={"csrf": field(login.text, "csrf"), "username": "grace",
                                              "password": "hopper-1906-cobol", "continue": field(login.text, "continue")},
                     allow_redirects=False)
    check("password sign-in accepted", r.status_code == 303, r.status_code)
    consent = browser.get(issuer + r.headers["location"], allow_redirects=False)
    check("consent page lists the scopes in words", consent.status_code == 200 and "See your email address" in consent.text)
    r = browser.post(f"{issuer}/oauth/authorize", data={"csrf": field(consent.text, "csrf"), "request": field(consent.text, "request"),
                                                       "decision": "allow"}, allow_redirects=False)
    callback = r.headers.get("location", "")
    check("consent redirects to the registered redirect URI", callback.startswith("https://rp.test/cb?"), callback)
    from urllib.parse import parse_qs, urlparse
    q = parse_qs(urlparse(callback).query)
    check("state comes back untouched", q.get("state") == [state], q.get("state"))
    check("iss in the authorization response (RFC 9207)", q.get("iss") == [issuer], q.get("iss"))
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    check("authlib redeemed the code with PKCE", "access_token" in token and "id_token" in token, list(token))
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"]).json())
    claims = ajwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                         claims_options={"iss": {"essential": True, "values": [issuer]},
                                         "aud": {"essential": True, "values": [rp["client_id"]]}},
                         claims_params={"nonce": nonce, "client_id": rp["client_id"], "access_token": token["access_token"]})
    try:
        claims.validate(leeway=30)
        check("authlib CodeIDToken validates the ID token (sig, iss, aud, nonce, at_hash, exp)", True)
    except Exception as e:  # noqa: BLE001 - any validation error fails the check
        check("authlib CodeIDToken validates the ID token (sig, iss, aud, nonce, at_hash, exp)", False, repr(e))
    check("ID token header is RS256", claims.header.get("alg") == "RS256", claims.header)
    ui = session.get(meta["userinfo_endpoint"]).json()
    check("userinfo names the user", ui.get("preferred_username") == "grace" and ui.get("email") == "grace@example.com", ui)
    old = token["refresh_token"]
    new = session.refresh_token(meta["token_endpoint"], refresh_token=old)
    check("authlib refreshed; the refresh token rotated", new.get("refresh_token") not in (None, old), list(new))
    r = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": old},
                      auth=(rp["client_id"], rp["client_secret"]))
    check("a rotated refresh token is refused (invalid_grant)", r.status_code == 400 and r.json().get("error") == "invalid_grant", r.text)


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="portcullis-interop-")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update({
        "PORTCULLIS_SERVER_LISTEN": f"127.0.0.1:{port}",
        "PORTCULLIS_SERVER_ISSUER": issuer,
        "PORTCULLIS_DATABASE_URL": f"sqlite://{work}/p.db?mode=rwc",
        "PORTCULLIS_KEYS_MASTER_KEY_FILE": f"{work}/master.key",
    })

    def cli(*args):
        out = subprocess.run([binary, *args], env=env, cwd=work, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    clients = {}
    for alg in ALGS:
        clients[alg] = cli("client", "create", "--name", f"interop-{alg}", "--grant-type", "client_credentials",
                           "--scope", "read", "--scope", "write", "--access-token-alg", alg)
    opaque = cli("client", "create", "--name", "interop-opaque", "--grant-type", "client_credentials",
                 "--scope", "read", "--token-format", "opaque")

    rp = cli("client", "create", "--name", "interop-rp", "--grant-type", "authorization_code",
             "--grant-type", "refresh_token", "--redirect-uri", "https://rp.test/cb",
             "--scope", "openid", "--scope", "profile", "--scope", "email", "--scope", "offline_access",
             "--scope", "read")
    cli("role", "put", "--name", "reader", "--scope", "read")
    subprocess.run([binary, "user", "create", "--username", "grace", "--email", "grace@example.com",
                    "--role", "reader", "--password-stdin"], env=env, cwd=work, input="hopper-1906-cobol\n",
                   capture_output=True, text=True, check=True)

    receiver, deliveries = start_receiver()
    hook = cli("webhook", "create", "--url", f"http://127.0.0.1:{receiver.server_address[1]}/hook",
               "--event", "token.revoked")

    server = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=subprocess.DEVNULL,
                              stderr=open(f"{work}/server.log", "w"))
    try:
        for _ in range(200):
            try:
                if requests.get(f"{issuer}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        else:
            raise SystemExit("server did not become ready")

        meta = requests.get(f"{issuer}/.well-known/oauth-authorization-server").json()
        check("discovery issuer matches", meta["issuer"] == issuer, meta.get("issuer"))
        oidc = requests.get(f"{issuer}/.well-known/openid-configuration").json()
        check("openid-configuration agrees", oidc["token_endpoint"] == meta["token_endpoint"])
        jwks_client = jwt.PyJWKClient(meta["jwks_uri"])

        spec = requests.get(f"{issuer}/api/v1/openapi.json").json()
        try:
            validate_openapi(spec)
            check("admin API OpenAPI document is valid (openapi-spec-validator)", spec["openapi"].startswith("3.1"))
        except Exception as e:  # noqa: BLE001 - report any validation failure as a failed check
            check("admin API OpenAPI document is valid (openapi-spec-validator)", False, str(e)[:300])

        for alg in ALGS:
            c = clients[alg]
            for method in ["client_secret_basic", "client_secret_post"]:
                session = OAuth2Session(c["client_id"], c["client_secret"], scope="read",
                                        token_endpoint_auth_method=method)
                tok = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
                check(f"{alg} {method}: authlib got a bearer token", tok.get("token_type") == "Bearer", tok)
                access = tok["access_token"]
                header = jwt.get_unverified_header(access)
                check(f"{alg} {method}: typ at+jwt, alg {alg}", header.get("typ") == "at+jwt" and header.get("alg") == alg, header)
                key = jwks_client.get_signing_key_from_jwt(access)
                claims = jwt.decode(access, key.key, algorithms=[alg], audience=issuer, issuer=issuer,
                                    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
                check(f"{alg} {method}: PyJWT verified the signature and claims",
                      claims["client_id"] == c["client_id"] and claims["scope"] == "read", claims)
                try:
                    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
                    jwt.decode(forged, key.key, algorithms=[alg], audience=issuer, issuer=issuer)
                    check(f"{alg} {method}: PyJWT rejects a forged signature", False)
                except jwt.InvalidSignatureError:
                    check(f"{alg} {method}: PyJWT rejects a forged signature", True)

        relying_party(oidc, rp, issuer)

        # Introspection and revocation through Authlib, JWT and opaque.
        for label, c in [("jwt", clients["ES256"]), ("opaque", opaque)]:
            session = OAuth2Session(c["client_id"], c["client_secret"], token_endpoint_auth_method="client_secret_basic",
                                    revocation_endpoint_auth_method="client_secret_basic")
            access = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")["access_token"]
            r = session.introspect_token(meta["introspection_endpoint"], token=access)
            check(f"{label}: authlib introspection says active", r.status_code == 200 and r.json().get("active") is True, r.text)
            r = session.revoke_token(meta["revocation_endpoint"], token=access)
            check(f"{label}: authlib revocation answered 200", r.status_code == 200, r.text)
            r = session.introspect_token(meta["introspection_endpoint"], token=access)
            check(f"{label}: revoked token is inactive at once", r.json() == {"active": False}, r.text)

        # The two revocations reach the webhook receiver, signed.
        for _ in range(100):
            if len(deliveries) >= 2:
                break
            time.sleep(0.1)
        check("webhook: both revocations delivered", len(deliveries) == 2, len(deliveries))
        verify = readme_verify()
        for headers, body in deliveries:
            sig = headers.get("Portcullis-Signature") or headers.get("portcullis-signature", "")
            event = json.loads(body)
            check(f"webhook {event['id']}: README recipe verifies the signature", verify(hook["secret"], sig, body), sig)
            check(f"webhook {event['id']}: is a token.revoked event", event["type"] == "token.revoked", event)
            check(f"webhook {event['id']}: a tampered body fails", not verify(hook["secret"], sig, body + b" "))
            check(f"webhook {event['id']}: a wrong secret fails", not verify("pcwhsec_wrong", sig, body))
            t = int(dict(p.split("=", 1) for p in sig.split(","))["t"])

            class AnHourLater:  # the receiver's clock, an hour on: a replay
                @staticmethod
                def time():
                    return t + 3600

            verify.__globals__["time"] = AnHourLater
            check(f"webhook {event['id']}: replayed an hour later fails", not verify(hook["secret"], sig, body))
            verify.__globals__["time"] = time
    finally:
        receiver.shutdown()
        server.terminate()
        code = server.wait(timeout=30)
        check("server exits cleanly on SIGTERM", code == 0, f"exit code {code}")

    print(f"interop: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
