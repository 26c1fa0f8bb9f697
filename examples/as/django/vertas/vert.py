"""The three additions of docs/integrating.md, as one Django middleware: about ten lines of
logic in the framework's natural hook. Every request reaches the AS through medmij-vert-proxy.

1. On the authorization request: read X-Vert-Requested and keep it in the login session. When a
   login session exists for another representation than the one now asked, log out first, so
   that DigiD asks again (an existing session would otherwise be reused: Vert 1/2 with no
   chance to log in again). Not needed, and off (VERTAS_FRESH_LOGIN_BY_PROXY=1), when the proxy
   runs with representation.fresh_login = true: it asks with prompt=login, which DOT honours.
2. On the code redirect: DOT already goes back to the redirect_uri as received, with code and
   state as received.
3. On that same response: the representation signal, from the login session.
"""
import os
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth import logout

AUTHORIZE_PATH = "/o/authorize/"
# The proxy's representation.fresh_login asks for the new login instead (prompt=login).
FRESH_LOGIN_BY_PROXY = os.environ.get("VERTAS_FRESH_LOGIN_BY_PROXY") == "1"


class VertMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == AUTHORIZE_PATH:
            # (1) Only the proxy sets this header; absent means no representation asked. The
            # sealed state names the flow: a new one with a login for another representation
            # logs out first. Within a flow (the login's ?next= round trip, the consent POST)
            # the login stands, whatever was chosen at DigiD: the proxy judges that.
            requested = request.headers.get("X-Vert-Requested")
            flow = request.GET.get("state") or request.POST.get("state")
            if flow != request.session.get("vert_flow"):
                if (
                    not FRESH_LOGIN_BY_PROXY
                    and request.user.is_authenticated
                    and request.session.get("vert_used", "none") != (requested or "none")
                ):
                    logout(request)
                request.session["vert_flow"] = flow
            request.session["vert_requested"] = requested
        response = self.get_response(request)
        if request.path == AUTHORIZE_PATH and response.status_code in (301, 302, 303):
            query = parse_qs(urlsplit(response.get("Location", "")).query)
            if "code" in query:
                # (3) What was actually used during this login, and for whom.
                response["X-Vert-Representation"] = request.session.get("vert_used", "none")
                birthdate = request.session.get("vert_birthdate")
                if birthdate:
                    response["X-Vert-Birthdate"] = birthdate
        return response
