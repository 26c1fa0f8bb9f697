#!/usr/bin/env python3
"""The reference integration, tested: the stock Django OAuth Toolkit AS of this folder behind
medmij-vert-proxy, driven by a real client library (authlib, as a PGO uses it) and a browser
stand-in (requests, following redirects by hand so that each one can be seen).

Every server runs on 127.0.0.1 with a port the kernel picked (read from its own log line):
gunicorn with the AS, and the proxy binary given as the first argument.

    test_flows.py path/to/medmij-vert-proxy
"""
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

# authlib refuses plain-HTTP token endpoints outside tests; this is one (loopback only).
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
CALLBACK = "https://pgo.example.nl/callback"


def start(cmd, pattern, env=None, cwd=None):
    """Starts `cmd`, waits for a line of its stderr matching `pattern`, drains the rest."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=cwd, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        found = re.search(pattern, line)
        if found:
            threading.Thread(target=lambda: [lines.append(l) for l in proc.stderr], daemon=True).start()
            return proc, found, lines
    raise SystemExit(f"{cmd[0]} ended before {pattern!r}:\n{''.join(lines)}")


class Forms(HTMLParser):
    """The forms of a page: action, and the named inputs' values (submit buttons apart)."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}, "submits": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            kind = "submits" if attrs.get("type") == "submit" else "fields"
            self.forms[-1][kind][attrs["name"]] = attrs.get("value", "")


def forms(page):
    parser = Forms()
    parser.feed(page)
    return parser.forms


class Browser:
    """A browser for one Persoon: cookies, redirects followed one at a time, never to the PGO."""

    def __init__(self, base):
        self.base = base
        self.http = requests.Session()
        self.logins = 0

    def walk(self, url, person="self", represent="", kind="", allow=True):
        """From `url` to the PGO's callback (its URL) or a page of the proxy's (the response)."""
        method, data = "GET", None
        for _ in range(20):
            r = self.http.request(method, url, data=data, allow_redirects=False)
            method, data = "GET", None
            if r.is_redirect:
                target = urljoin(url, r.headers["Location"])
                if target.startswith(CALLBACK):
                    return target, r
                url = target
                continue
            page = forms(r.text) if r.status_code == 200 else []
            if page and "person" in page[0]["fields"] | {"person": 1} and urlsplit(url).path == "/accounts/login/":
                self.logins += 1
                form = page[0]
                fields = dict(form["fields"], person=person)
                fields["represent"] = represent
                if kind:
                    fields["kind"] = kind
                method, data, url = "POST", fields, urljoin(url, form["action"] or url)
                continue
            if page and "allow" in page[0]["submits"]:
                form = page[0]
                fields = dict(form["fields"])
                if allow:
                    fields["allow"] = "Authorize"
                method, data, url = "POST", fields, urljoin(url, form["action"] or url)
                continue
            return None, r
        raise AssertionError("more than 20 steps")


def main():
    proxy_bin = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="vert-django-")
    env = dict(os.environ, VERTAS_DB=os.path.join(work, "db.sqlite3"), DJANGO_SETTINGS_MODULE="vertas.settings")
    subprocess.run([sys.executable, "-m", "vertas.bootstrap"], cwd=HERE, env=env, check=True)
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    as_proc, found, as_log = start(
        [gunicorn, "-b", "127.0.0.1:0", "-w", "1", "vertas.wsgi"], r"Listening at: http://127\.0\.0\.1:(\d+)", env, HERE
    )
    as_port = found.group(1)
    # The same AS as a DVA runs it that leaves the new login to the proxy's fresh_login: without
    # the middleware's own logout (VERTAS_FRESH_LOGIN_BY_PROXY=1).
    plain_proc, found, plain_log = start(
        [gunicorn, "-b", "127.0.0.1:0", "-w", "1", "vertas.wsgi"],
        r"Listening at: http://127\.0\.0\.1:(\d+)",
        dict(env, VERTAS_FRESH_LOGIN_BY_PROXY="1"),
        HERE,
    )
    plain_port = found.group(1)

    def proxy(name, authorize_path, token_path, port=as_port, representation=""):
        config = os.path.join(work, f"{name}.toml")
        with open(config, "w") as f:
            f.write(f"""
[listen]
addr = "127.0.0.1:0"
[upstream]
url = "http://127.0.0.1:{port}"
[oauth]
authorize_path = "{authorize_path}"
[clients]
static = [ {{ hostname = "pgo.example.nl", name = "Voorbeeld PGO" }} ]
[representation]
scopes = ["onbehalfof", "onbehalfofchild"]
strip_scope_token = true
{representation}
[token_guard]
path = "{token_path}"
[log]
format = "json"
""")
        proc, found, log = start([proxy_bin, "--config", config], r'"addr":"127\.0\.0\.1:(\d+)"')
        return proc, f"http://127.0.0.1:{found.group(1)}", log

    # As DOT's routes are: with the slash.
    proxy_proc, base, proxy_log = proxy("slash", "/o/authorize/", "/o/token/")
    # Configured without it: DOT's APPEND_SLASH answers the forwarded request with a 301.
    bare_proc, bare, bare_log = proxy("bare", "/o/authorize", "/o/token/")
    # In front of the AS without its own logout: with representation.fresh_login, and without.
    fresh_proc, fresh, fresh_log = proxy("fresh", "/o/authorize/", "/o/token/", plain_port, "fresh_login = true")
    stale_proc, stale, stale_log = proxy("stale", "/o/authorize/", "/o/token/", plain_port)
    results = []

    def case(name, fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            results.append((name, e))
            print(f"FAIL {name}: {type(e).__name__}: {e}")

    def pgo(scope, extra=None, base=base):
        """The PGO's side: authlib's authorization URL (its own state, PKCE S256)."""
        client = OAuth2Session("pgo.example.nl", redirect_uri=CALLBACK, scope=scope, code_challenge_method="S256")
        verifier = "v" * 20 + os.urandom(16).hex()
        url, state = client.create_authorization_url(f"{base}/o/authorize", code_verifier=verifier, **(extra or {}))
        # authlib checks the state of the response against this one in fetch_token.
        client.state = state
        return client, url, verifier

    def token(client, callback, verifier, base=base, path="/o/token/"):
        return client.fetch_token(f"{base}{path}", authorization_response=callback, code_verifier=verifier)

    def error_response(client, callback, error):
        """An error response, as the PGO checks one: its own state back, the error named.
        (authlib leaves error responses to the application; its fetch_token is for codes.)"""
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        assert params.get("state") == client.state, (params.get("state"), client.state)
        assert params.get("error") == error, params
        assert "code" not in params, params

    def released(scope, extra, **login):
        client, url, verifier = pgo(scope, extra)
        callback, r = Browser(base).walk(url, **login)
        assert callback, f"no code: {r.status_code} {r.text[:300]}"
        assert "code=" in callback, callback
        # The PGO's own state, not a sealed one.
        assert parse_qs(urlsplit(callback).query)["state"] == [client.state], callback
        assert r.headers.get("Content-Length") == "0" and not r.content, "the AS's body reached the client"
        tok = token(client, callback, verifier)
        assert tok.get("access_token"), tok
        return client, callback, verifier

    def self_flow():
        client, callback, verifier = released("48", None)
        # The library's own state check is on: another state is refused before any request.
        forged = re.sub(r"state=[^&]+", "state=forged", callback)
        try:
            client.fetch_token(f"{base}/o/token/", authorization_response=forged, code_verifier=verifier)
        except Exception as e:  # noqa: BLE001 - authlib's own error type for it
            assert getattr(e, "error", None) == "mismatching_state", repr(e)
        else:
            raise AssertionError("authlib took a forged state")
        # Token once: the same code again is refused.
        try:
            token(client, callback, verifier)
        except OAuthError as e:
            assert e.error == "invalid_grant", e.error
        else:
            raise AssertionError("a code became a token twice")

    def onbehalfof():
        released("48 onbehalfof", {"MedMij_geboortedatum": "19700901"}, represent="piet", kind="onbehalfof")

    def onbehalfofchild():
        released("48 onbehalfofchild", {"MedMij_geboortedatum": "20200315"}, represent="kind", kind="onbehalfofchild")

    def withheld(scope, extra, status, title, **login):
        client, url, verifier = pgo(scope, extra)
        callback, r = Browser(base).walk(url, **login)
        assert callback is None, f"released: {callback}"
        assert r.status_code == status, (r.status_code, r.text[:300])
        assert title in r.text, r.text[:500]
        return client, r

    def vert1():
        withheld("48 onbehalfof", {"MedMij_geboortedatum": "19700901"}, 403, "namens een ander is niet gelukt")

    def vert2():
        withheld("48", None, 403, "U logde in namens een ander", represent="piet", kind="onbehalfof")

    def vert3():
        client, url, verifier = pgo("48 onbehalfof")
        callback, r = Browser(base).walk(url)
        assert callback, (r.status_code, r.text[:300])
        error_response(client, callback, "invalid_request")

    def vert4():
        client, r = withheld(
            "48 onbehalfof", {"MedMij_geboortedatum": "19700902"}, 403, "De geboortedatum klopt niet",
            represent="piet", kind="onbehalfof",
        )
        link = re.search(r'href="(https://pgo\.example\.nl/callback\?[^"]+)"', r.text).group(1)
        link = html.unescape(link)
        assert "iss=" not in link, link
        error_response(client, link, "access_denied")

    def consent_denied():
        client, url, verifier = pgo("48")
        callback, r = Browser(base).walk(url, allow=False)
        assert callback, (r.status_code, r.text[:300])
        error_response(client, callback, "access_denied")

    def pkce_retry():
        client, url, verifier = pgo("48")
        callback, _ = Browser(base).walk(url)
        assert callback, "no code"
        # A wrong code_verifier: DOT refuses before it consumes the code, so may the PGO retry.
        try:
            token(client, callback, "w" * 43)
        except OAuthError as e:
            assert e.error == "invalid_grant", e.error
        else:
            raise AssertionError("a wrong code_verifier got a token")
        tok = token(client, callback, verifier)
        assert tok.get("access_token"), tok

    def session_reused_for_another_representation():
        browser = Browser(base)
        client, url, _ = pgo("48")
        assert browser.walk(url)[0], "self"
        client, url, verifier = pgo("48 onbehalfof", {"MedMij_geboortedatum": "19700901"})
        callback, r = browser.walk(url, represent="piet", kind="onbehalfof")
        assert browser.logins == 2, "the existing login was reused"
        assert callback and "code=" in callback, (r.status_code, r.text[:300])

    def fresh_login():
        """A login for themselves, then onbehalfof: with fresh_login the proxy asks DOT for a
        fresh login (prompt=login), the Persoon logs in on behalf of Piet, and the code is
        released; the AS has no logout of its own for it."""
        browser = Browser(fresh)
        client, url, verifier = pgo("48", base=fresh)
        callback, r = browser.walk(url)
        assert callback and "code=" in callback, (r.status_code, r.text[:300])
        assert browser.logins == 1
        client, url, verifier = pgo("48 onbehalfof", {"MedMij_geboortedatum": "19700901"}, base=fresh)
        callback, r = browser.walk(url, represent="piet", kind="onbehalfof")
        assert browser.logins == 2, f"no fresh login ({browser.logins} logins)"
        assert callback and "code=" in callback, (r.status_code, r.text[:300])
        assert parse_qs(urlsplit(callback).query)["state"] == [client.state], callback
        tok = token(client, callback, verifier, base=fresh)
        assert tok.get("access_token"), tok

    def fresh_login_off():
        """The same without the key: the login for themselves is reused, Vert 1 as before."""
        browser = Browser(stale)
        client, url, verifier = pgo("48", base=stale)
        assert browser.walk(url)[0], "self"
        client, url, verifier = pgo("48 onbehalfof", {"MedMij_geboortedatum": "19700901"}, base=stale)
        callback, r = browser.walk(url, represent="piet", kind="onbehalfof")
        assert callback is None, f"released: {callback}"
        assert browser.logins == 1, browser.logins
        assert r.status_code == 403 and "namens een ander is niet gelukt" in r.text, (r.status_code, r.text[:300])

    def append_slash():
        client, url, verifier = pgo("48 onbehalfof", {"MedMij_geboortedatum": "19700901"}, base=bare)
        browser = Browser(bare)
        first = browser.http.get(url, allow_redirects=False)
        assert first.status_code == 301, (first.status_code, first.headers)
        assert urlsplit(first.headers["Location"]).path == "/o/authorize/", first.headers
        callback, r = browser.walk(url, represent="piet", kind="onbehalfof")
        assert callback and "code=" in callback, (r.status_code, r.text[:300])
        assert parse_qs(urlsplit(callback).query)["state"] == [client.state], callback
        # The token endpoint spelled without its slash: the AS gets the configured one.
        tok = token(client, callback, verifier, base=bare, path="/o/token")
        assert tok.get("access_token"), tok

    for name, fn in [
        ("self: released, the state and the token once", self_flow),
        ("onbehalfof: released for the Vertegenwoordigde", onbehalfof),
        ("onbehalfofchild: released", onbehalfofchild),
        ("Vert 1: asked, not used: the page", vert1),
        ("Vert 2: used, not asked: the page", vert2),
        ("Vert 3: no MedMij_geboortedatum: invalid_request to the PGO", vert3),
        ("Vert 4: another birth date: the page, its link back access_denied", vert4),
        ("consent denied: access_denied with the PGO's state", consent_denied),
        ("PKCE: a wrong code_verifier, then the right one", pkce_retry),
        ("a login session for another representation: a new login", session_reused_for_another_representation),
        ("APPEND_SLASH: the AS's 301 followed, one seal; /o/token without its slash", append_slash),
        ("fresh_login: a login for themselves, then onbehalfof: a fresh login, released", fresh_login),
        ("fresh_login off: a login for themselves reused for onbehalfof: Vert 1", fresh_login_off),
    ]:
        case(name, fn)
    for proc in (proxy_proc, bare_proc, fresh_proc, stale_proc, as_proc, plain_proc):
        proc.terminate()
        proc.wait()
    failed = [r for r in results if r[1]]
    if failed:
        print("--- proxy log (decision lines) ---")
        for line in proxy_log + bare_log + fresh_log + stale_log:
            if "decision" in line:
                print(line.rstrip())
        print("--- AS log ---")
        print("".join(as_log[-30:]))
        print("--- AS log (fresh_login by the proxy) ---")
        print("".join(plain_log[-30:]))
    print(f"django: {len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
