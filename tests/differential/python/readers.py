"""Python readers: `python readers.py django|werkzeug|starlette`.

Each reader listens on 127.0.0.1 port 0, prints `LISTENING <port>` once the
socket listens, and answers every request with the JSON echo described in
tests/differential/README.md. Parsing and routing are the framework's own.
"""
import json
import os
import socket
import sys

GUARDED = ["client_id", "redirect_uri", "response_type", "scope", "state",
           "MedMij_geboortedatum", "response_mode", "request", "request_uri",
           "grant_type", "code", "code_verifier"]
AUTHORIZE = os.environ.get("READER_AUTHORIZE_PATH", "/oauth2/authorize")
TOKEN = os.environ.get("READER_TOKEN_PATH", "/oauth2/token")


def single(md):
    # The framework's ordinary `.get(name)`: Django/Starlette last value, Werkzeug first.
    return {n: md.get(n) for n in GUARDED}


def lists(md):
    # Names the framework holds no value for are left out.
    return {n: md.getlist(n) for n in GUARDED if md.getlist(n)}


def listening(port):
    print(f"LISTENING {port}", flush=True)


# --------------------------------------------------------------------------- Django
def run_django():
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],  # Host validation is not what we compare
        SECRET_KEY="differential",
        ROOT_URLCONF=__name__,
        APPEND_SLASH=True,
        # EchoMiddleware is outermost so it sees CommonMiddleware's APPEND_SLASH
        # redirect and the resolver's 404 as ordinary responses.
        MIDDLEWARE=[f"{__name__}.EchoMiddleware", "django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    # Django's own runserver server (a wsgiref subclass); it percent-decodes PATH_INFO
    # as latin-1 and Django re-reads it as UTF-8.
    httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietDjangoHandler(WSGIRequestHandler), ipv6=False)
    httpd.set_app(get_wsgi_application())
    listening(httpd.server_address[1])
    httpd.serve_forever()


def QuietDjangoHandler(base):
    class H(base):
        def log_message(self, *a):
            pass
    return H


def django_echo(request, route, location=None):
    from django.http import JsonResponse

    body = {"reader": "django", "route": route}
    if location is not None:
        body["location"] = location
    # request.POST is parsed only for method POST with urlencoded or multipart
    # bodies; other types/methods give an empty QueryDict. Django has no merged view.
    try:
        post = request.POST
    except Exception:  # e.g. malformed multipart: Django raises on access
        from django.http import QueryDict
        post = QueryDict()
    body["query"] = single(request.GET)
    body["form"] = single(post)
    body["all"] = {"query": lists(request.GET), "form": lists(post)}
    return JsonResponse(body, json_dumps_params={"ensure_ascii": False})


class EchoMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        resp = self.get_response(request)
        if resp.status_code in (301, 302, 307, 308) and resp.has_header("Location"):
            return django_echo(request, "redirect", resp["Location"])
        if resp.status_code == 404:
            return django_echo(request, "other")
        return resp


def _django_view(route):
    def view(request):
        return django_echo(request, route)
    return view


def _django_urlpatterns():
    from django.urls import path
    # path() patterns have no leading slash; matched against the decoded path_info.
    return [path(AUTHORIZE.lstrip("/"), _django_view("authorize")),
            path(TOKEN.lstrip("/"), _django_view("token"))]


def __getattr__(name):  # ROOT_URLCONF=__name__: built lazily after settings exist
    if name == "urlpatterns":
        return _django_urlpatterns()
    raise AttributeError(name)


# --------------------------------------------------------------------------- Werkzeug
def run_werkzeug():
    from werkzeug.exceptions import HTTPException, NotFound
    from werkzeug.routing import Map, RequestRedirect, Rule
    from werkzeug.serving import WSGIRequestHandler, make_server
    from werkzeug.wrappers import Request, Response

    # Default Map settings: strict_slashes=True, merge_slashes=True (so `//` yields a
    # 308 RequestRedirect), case-sensitive, matched on the decoded path.
    url_map = Map([Rule(AUTHORIZE, endpoint="authorize"), Rule(TOKEN, endpoint="token")])

    def app(environ, start_response):
        req = Request(environ)
        location = None
        try:
            route, _ = url_map.bind_to_environ(environ).match()
        except RequestRedirect as e:
            route, location = "redirect", e.new_url
        except NotFound:
            route = "other"
        except HTTPException:  # 405 cannot happen: rules accept every method
            route = "other"
        body = {"reader": "werkzeug", "route": route}
        if location is not None:
            body["location"] = location
        # request.form: urlencoded and multipart bodies (any method). request.values
        # is args+form (form only for non-GET); all `.get`s return the FIRST value.
        body["query"] = single(req.args)
        body["form"] = single(req.form)
        body["merged"] = single(req.values)
        body["all"] = {"query": lists(req.args), "form": lists(req.form), "merged": lists(req.values)}
        return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")(environ, start_response)

    class Quiet(WSGIRequestHandler):
        def log(self, *a, **k):
            pass

    srv = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    listening(srv.server_port)
    srv.serve_forever()


# --------------------------------------------------------------------------- Starlette
def run_starlette():
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, Router

    async def echo(scope, receive, route, location=None):
        req = Request(scope, receive)
        # await request.form() parses urlencoded and multipart (via python-multipart)
        # and returns an empty FormData for other content types; any method.
        # ImmutableMultiDict.get returns the LAST value. Starlette has no merged view.
        try:
            form = await req.form()
        except Exception:
            from starlette.datastructures import FormData
            form = FormData()
        body = {"reader": "starlette", "route": route}
        if location is not None:
            body["location"] = location
        body["query"] = single(req.query_params)
        body["form"] = {n: (v if isinstance(v, str) or v is None else "<file>") for n, v in single(form).items()}
        body["all"] = {"query": lists(req.query_params),
                       "form": {n: [v if isinstance(v, str) else "<file>" for v in vs] for n, vs in lists(form).items()}}
        return JSONResponse(body)

    def endpoint(route):
        # A plain ASGI app (not a function) makes Route accept every method.
        class Endpoint:
            async def __call__(self, scope, receive, send):
                await (await echo(scope, receive, route))(scope, receive, send)
        return Endpoint()

    # Router defaults: redirect_slashes=True (307 to the path with/without '/'),
    # case-sensitive, matched on the decoded scope["path"].
    router = Router(routes=[Route(AUTHORIZE, endpoint("authorize")), Route(TOKEN, endpoint("token"))],
                    default=endpoint("other"))

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await router(scope, receive, send)
        # Starlette's own redirect is intercepted so it can be reported as JSON.
        started = {}

        async def capture(message):
            if message["type"] == "http.response.start" and message["status"] in (301, 302, 307, 308):
                started["location"] = dict(message["headers"]).get(b"location", b"").decode("latin-1")
                return
            if "location" in started:
                return
            await send(message)

        await router(scope, receive, capture)
        if "location" in started:
            await (await echo(scope, receive, "redirect", started["location"]))(scope, receive, send)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, http="h11", lifespan="off", log_level="warning", access_log=False)
    listening(sock.getsockname()[1])
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    {"django": run_django, "werkzeug": run_werkzeug, "starlette": run_starlette}[sys.argv[1]]()
