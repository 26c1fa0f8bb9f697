#!/usr/bin/env python3
"""Smoke test for the differential readers (python3 stdlib only).

Starts every reader through start.sh, sends raw HTTP/1.1 bytes over a plain socket
(no client library to normalise anything) and checks facts about each framework
that were observed by running them. Prints `N passed, M failed`; exits 1 on failure.

    python3 tests/differential/smoke.py            # run the checks
    python3 tests/differential/smoke.py --dump     # also print what every reader read
    python3 tests/differential/smoke.py go rack    # only these readers
"""
import json
import os
import select
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
READERS = ["php", "tomcat", "django", "werkzeug", "starlette", "express", "koa", "rack", "go"]
# An extra Django whose authorize route ends in '/', to see APPEND_SLASH redirect.
EXTRA = {"django-slash": ("django", {"READER_AUTHORIZE_PATH": "/oauth2/authorize/"})}
ALL = "*"  # expectation for every reader not named in a case


# ------------------------------------------------------------------ raw HTTP helpers
def req(target, method="GET", body=None, ctype=None, headers=()):
    """Raw request bytes; `target` is sent byte-for-byte (str is taken as latin-1)."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if ctype:
        lines.append(b"Content-Type: " + ctype.encode())
    if body is not None:
        if isinstance(body, str):
            body = body.encode("latin-1")
        lines.append(b"Content-Length: %d" % len(body))
    lines += [h.encode("latin-1") for h in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def form(target, body, method="POST", ctype="application/x-www-form-urlencoded"):
    return req(target, method, body, ctype)


def exchange(port, raw, timeout=10):
    """Returns (status, json-or-None). status 0: connection closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        return 0, None
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def lookup(status, doc, path):
    if path == "status":
        return status
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


# ------------------------------------------------------------------ the checks
# Every expectation below is what the framework was seen to do (see --dump), and
# each is a fact the differential test relies on. A case maps reader -> {path:
# value}; path is "status", "route", "location" or e.g. "query.state",
# "all.merged.code". ALL ("*") covers the readers a case does not name. Values
# that are not UTF-8 are shown as U+FFFD by the php, rack and go readers (JSON
# cannot hold the raw bytes those frameworks keep).
AUTH = "/oauth2/authorize"
TOK = "/oauth2/token"
TOKEN_BODY = "grant_type=authorization_code&code=x"
FFFD = "\ufffd"
CASES = []


def case(name, raw, *specs, readers=None):
    """specs: (path, {reader: value, ALL: value}) pairs, merged per reader."""
    expect = {}
    for path, per in specs:
        for reader, value in per.items():
            expect.setdefault(reader, {})[path] = value
    # A reader named only for some paths still gets the ALL value for the others.
    if ALL in expect:
        for reader, exp in expect.items():
            for path, value in expect[ALL].items():
                exp.setdefault(path, value)
    CASES.append((name, raw, expect, readers))


def by(default="__none__", **per):
    out = {k.replace("_", "-"): v for k, v in per.items()}
    if default != "__none__":
        out[ALL] = default
    return out


def q(query):
    return req(AUTH + "?" + query)


REJECT = ("status", by(tomcat=400))  # Tomcat refuses raw [ ] | { } " # etc. in the query

# --- query string: separators, names, duplicates ------------------------------------
case("';' separates only in Rack", q("x=1;state=attacker"), ("query.state", by(None, rack="attacker")))
case("';' inside a value", q("state=a;b&code=c"),
     ("query.state", by("a;b", rack="a", go=None)), ("query.code", by("c")))
case("PHP cuts a name at NUL", q("redirect_uri=a&redirect_uri%00x=b"),
     ("query.redirect_uri", by("a", php="b")))
case("NUL inside a value is kept", q("state=a%00b"), ("query.state", by("a\x00b")))
case("PHP turns '.' into '_'", q("redirect.uri=x"), ("query.redirect_uri", by(None, php="x")))
case("PHP turns ' ' into '_'", q("redirect%20uri=x"), ("query.redirect_uri", by(None, php="x")))
case("PHP turns '+' (space) into '_'", q("redirect+uri=x"), ("query.redirect_uri", by(None, php="x")))
case("PHP drops leading spaces of a name", q("%20state=x"), ("query.state", by(None, php="x")))
case("trailing space keeps the name apart", q("state%20=x"), ("query.state", by(None)))
case("control char in a name keeps it apart", q("state%01=1&code%09=2"),
     ("query.state", by(None)), ("query.code", by(None)))
case("PHP turns an unpaired '[' into '_'", q("redirect[uri=x"),
     ("query.redirect_uri", by(None, php="x", tomcat=None)), REJECT)
case("`state[]` builds an array (raw brackets)", q("state[]=a&state[]=b"),
     ("query.state", by(None, php=["a", "b"], express=["a", "b"], rack=["a", "b"])), REJECT)
case("`state%5B%5D` builds an array too", q("state%5B%5D=a"),
     ("query.state", by(None, php=["a"], express=["a"], rack=["a"])))
case("`state%5Bx%5D` builds an object", q("state%5Bx%5D=a"),
     ("query.state", by(None, php={"x": "a"}, express={"x": "a"}, rack={"x": "a"})))
case("plain + bracketed duplicate", q("state=a&state%5B%5D=b"),
     ("query.state", by("a", php=["b"], express=["a", "b"], rack=None)),
     ("query.error", by(None, rack="Rack::QueryParser::ParameterTypeError")))
case("duplicates: who wins", q("state=a&state=b"),
     ("query.state", by(php="b", tomcat="a", django="b", werkzeug="a", starlette="b",
                        express=["a", "b"], koa=["a", "b"], rack="b", go="a")),
     ("all.query.state", by(tomcat=["a", "b"], django=["a", "b"], werkzeug=["a", "b"],
                            starlette=["a", "b"], go=["a", "b"])),
     ("all.merged.state", by(tomcat=["a", "b"], werkzeug=["a", "b"], go=["a", "b"])))
case("names are case-sensitive", q("STATE=a&State=b"), ("query.state", by(None)))
case("percent-encoded name letters are decoded", q("%73tate=x"), ("query.state", by("x")))
case("'+' is a space, %2B a plus", q("state=a+b%2Bc"), ("query.state", by("a b+c")))
case("invalid %-escape", q("state=%zz&code=1"),
     ("query.state", by("%zz", tomcat=None, go=None, rack=None)),
     ("query.code", by("1", rack=None)), ("status", by(200, rack=400)))  # WEBrick: bad URI
case("%FF is not UTF-8", q("state=%ff"),
     ("query.state", by(FFFD, werkzeug="%FF", express="%ff")))
case("name without '='", q("state"), ("query.state", by("", rack=None)))
case("a later bare name", q("state=a&state"),
     ("query.state", by(php="", tomcat="a", django="", werkzeug="a", starlette="",
                        express=["a", ""], koa=["a", ""], rack=None, go="a")))
case("%26 does not split", q("state=a%26code=x"), ("query.state", by("a&code=x")), ("query.code", by(None)))
case("raw '#' in the target", q("state=a#frag"),
     ("query.state", by("a", tomcat=None, django="a#frag", starlette="a#frag", go="a#frag")),
     ("status", by(200, tomcat=400)))
case("raw UTF-8 bytes in the query", req(AUTH + "?state=\xc3\xa9"),
     ("status", by(400, php=0, django=200, werkzeug=200, go=200)),
     ("query.state", by(None, django="\u00e9", werkzeug="\u00c3\u00a9", go="\u00e9")))
case("raw control byte in the query", req(AUTH + "?state=a\x01b"),
     ("status", by(400, php=0, django=200, werkzeug=200, rack=200)),
     ("query.state", by(None, django="a\x01b", werkzeug="a\x01b", rack="a\x01b")))

# --- routing -----------------------------------------------------------------------
def route(default="other", **per):
    return ("route", by(default, **per))


case("exact path", req(AUTH + "?state=s"), route("authorize"), ("query.state", by("s")))
case("token path", req(TOK), route("token"))
case("other path", req("/oauth2/other"), route("other"))
case("trailing slash", req(AUTH + "/"),
     route("other", starlette="redirect", express="authorize", koa="authorize", rack="authorize"),
     ("location", by(starlette="http://127.0.0.1/oauth2/authorize")))
case("upper-case path", req("/OAUTH2/authorize"), route("other", express="authorize", koa="authorize"))
case("'//' inside the path", req("/oauth2//authorize?state=1"),
     route("other", tomcat="authorize", rack="authorize", werkzeug="redirect", go="redirect"),
     ("location", by(go="/oauth2/authorize?state=1", werkzeug="http://127.0.0.1/oauth2/authorize?state=1")),
     ("query.state", by(go="1", werkzeug="1")))
# Python's http.server (under Django's and Werkzeug's dev servers) collapses a leading '//'.
case("leading '//'", req("//oauth2/authorize"),
     route("other", tomcat="authorize", django="authorize", werkzeug="authorize", rack="authorize", go="redirect"))
case("';' path parameter", req(AUTH + ";x=1"), route("other", tomcat="authorize"))
case("';' path parameter mid-path", req("/oauth2;x/authorize"), route("other", tomcat="authorize"))
case("'..;' (Tomcat path parameter on a dot segment)", req("/x/..;/oauth2/authorize"), route("other", tomcat="authorize"))
case("%61 in the path", req("/oauth2/%61uthorize"),
     route("authorize", express="other", koa="other", rack="other"))
case("%2F in the path", req("/oauth2%2Fauthorize"),
     route("authorize", express="other", koa="other", rack="other", tomcat=None), ("status", by(200, tomcat=400)))
case("%2F at the end", req(AUTH + "%2F"),
     route("other", starlette="redirect", tomcat=None), ("status", by(200, tomcat=400)))
case("'.' segment", req("/oauth2/./authorize"), route("other", tomcat="authorize", go="redirect"))
case("'..' segment", req("/oauth2/x/../authorize"), route("other", tomcat="authorize", go="redirect"))
case("%2e%2e segment", req("/oauth2/x/%2e%2e/authorize"), route("other", tomcat="authorize", go="redirect"))
case("token/../authorize", req(TOK + "/../authorize"),
     route("other", tomcat="authorize", go="redirect", rack="token"), ("location", by(go="/oauth2/authorize")))
case("below the route (Rack::URLMap mounts a prefix)", req(AUTH + "/x"), route("other", rack="authorize"))
case("%00 in the path", req(AUTH + "%00"), route("other", tomcat=None), ("status", by(200, tomcat=400)))
case("absolute-form target", req("http://127.0.0.1" + AUTH),
     route("authorize", php="other", django="other", starlette="other"))
case("APPEND_SLASH redirects when only the slashed path routes", req(AUTH + "?state=1"),
     route("redirect"), ("location", by("/oauth2/authorize/?state=1")), ("query.state", by("1")),
     readers=["django-slash"])
case("APPEND_SLASH: the slashed path itself", req(AUTH + "/"), route("authorize"), readers=["django-slash"])

# --- bodies ------------------------------------------------------------------------
case("urlencoded POST token body", form(TOK + "?code=q", TOKEN_BODY),
     route("token"), ("form.code", by("x")), ("form.grant_type", by("authorization_code")),
     ("query.code", by("q")),
     ("merged.code", by(php="x", tomcat="q", werkzeug="q", rack="x", go="x")),
     ("all.merged.code", by(tomcat=["q", "x"], werkzeug=["q", "x"], go=["x", "q"])))
case("charset parameter and upper-case media type",
     form(TOK, TOKEN_BODY, ctype="Application/X-WWW-Form-URLEncoded; charset=UTF-8"), ("form.code", by("x")))
case("POST without Content-Type", req(TOK, "POST", TOKEN_BODY), ("form.code", by(None, rack="x")))
case("text/plain body", form(TOK, TOKEN_BODY, ctype="text/plain"), ("form.code", by(None)))
case("PUT with a form body", form(TOK, TOKEN_BODY, method="PUT"),
     ("form.code", by("x", php=None, tomcat=None, django=None)))
case("GET with a form body", form(TOK, TOKEN_BODY, method="GET"),
     ("form.code", by("x", php=None, tomcat=None, django=None, go=None)),
     ("merged.code", by(werkzeug=None, rack="x")))
case("JSON body", form(TOK, '{"code":"j"}', ctype="application/json"), ("form.code", by(None, koa="j")))
MULTIPART = '--B\r\nContent-Disposition: form-data; name="code"\r\n\r\nm\r\n--B--\r\n'
case("multipart body", form(TOK, MULTIPART, ctype="multipart/form-data; boundary=B"),
     ("form.code", by("m", tomcat=None, express=None, koa=None)))
case("UTF-8 in the body, raw and %-encoded", form(TOK, "code=\xc3\xa9&state=%C3%A9"),
     ("form.code", by("\u00e9", tomcat="\u00c3\u00a9", starlette="\u00c3\u00a9")),
     ("form.state", by("\u00e9", tomcat="\u00c3\u00a9")))
case("';' in the body", form(TOK, "grant_type=a;code=x"),
     ("form.grant_type", by("a;code=x", go=None)), ("form.code", by(None)))
case("chunked body", req(TOK, "POST", None, "application/x-www-form-urlencoded", ["Transfer-Encoding: chunked"])
     + b"24\r\n" + TOKEN_BODY.encode() + b"\r\n0\r\n\r\n",
     ("form.code", by("x", django=None)))
case("lower-case method", form(TOK, TOKEN_BODY, method="post"),
     ("status", by(200, php=0, express=400, koa=400)),
     ("form.code", by("x", php=None, express=None, koa=None, tomcat=None, go=None)))
case("unknown method", req(AUTH + "?state=1", "FOO"),
     ("status", by(200, php=501, express=400, koa=400)),
     ("route", by("authorize", php=None, express=None, koa=None)))

# ------------------------------------------------------------------ running
def start(name, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.Popen([os.path.join(HERE, "start.sh"), name], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    return p


def wait_listening(p, deadline):
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                line = buf.split(b"\n")[0].decode()
                if line.startswith("LISTENING "):
                    return int(line.split()[1])
                break
        if p.poll() is not None:
            break
    raise RuntimeError(f"reader did not print LISTENING: {buf!r}")


def main(argv):
    dump = "--dump" in argv
    wanted = [a for a in argv if not a.startswith("--")] or READERS + list(EXTRA)
    t0 = time.monotonic()
    procs, ports = {}, {}
    try:
        for name in wanted:
            base, env = EXTRA.get(name, (name, None))
            procs[name] = start(base, env)
        for name, p in procs.items():
            ports[name] = wait_listening(p, time.monotonic() + 60)
        print(f"readers up in {time.monotonic() - t0:.1f}s: " + " ".join(f"{n}={ports[n]}" for n in ports))

        passed = failed = 0
        pool = ThreadPoolExecutor(max_workers=len(ports))
        for cname, raw, expect, only in CASES:
            names = [n for n in ports if (only is None or n in only) and (n not in EXTRA or only and n in only)]
            results = dict(zip(names, pool.map(lambda n: exchange(ports[n], raw), names)))
            if dump:
                first = raw.split(b"\r\n")[0]
                print(f"\n## {cname}: {first!r}")
                for n, (st, doc) in results.items():
                    print(f"  {n:12} {st} {compact(doc)}")
            for n, (st, doc) in results.items():
                exp = expect.get(n, expect.get(ALL))
                if exp is None:
                    continue
                bad = {k: lookup(st, doc, k) for k, v in exp.items() if lookup(st, doc, k) != v}
                if bad:
                    failed += 1
                    print(f"FAIL {cname} [{n}]: expected {exp}, got {bad} (status {st}: {compact(doc)})")
                else:
                    passed += 1
        print(f"smoke: {time.monotonic() - t0:.1f}s")
        print(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def compact(doc):
    """The JSON with null values and empty lists/maps left out, for reading."""
    if not isinstance(doc, dict):
        return doc

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if x not in (None, [], {})}
        return v
    return json.dumps({k: strip(v) for k, v in doc.items() if k != "reader"}, ensure_ascii=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
