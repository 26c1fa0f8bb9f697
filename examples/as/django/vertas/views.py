"""A stand-in for the DigiD login (the Authentication Server): the Persoon names who they are
and, only when the AS asked for representation (addition 1), may log in on behalf of someone.
The code is then issued for the Vertegenwoordigde (ext.vert.authint.202): the Django user is the
represented person."""
from django.contrib.auth import get_user_model
from django.contrib.auth import login as django_login
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

# Who can be represented, and their birth dates as the AS's records hold them.
RECORDS = {"piet": "19700901", "kind": "20200315"}


def login(request):
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    requested = request.session.get("vert_requested")
    if request.method != "POST":
        return render(request, "registration/login.html", {"next": next_url, "requested": requested})
    person = request.POST.get("person", "self")
    represent = request.POST.get("represent", "")  # a name from RECORDS, or empty
    kind = request.POST.get("kind", requested or "")
    User = get_user_model()
    if represent in RECORDS:
        user, _ = User.objects.get_or_create(username=represent)
        used, birthdate = kind or "onbehalfof", RECORDS[represent]
    else:
        user, _ = User.objects.get_or_create(username=person)
        used, birthdate = "none", None
    django_login(request, user)
    # Kept in the login session for addition 3 (login rotates the key, not the data).
    request.session["vert_used"] = used
    request.session["vert_birthdate"] = birthdate
    request.session["vert_requested"] = requested
    return redirect(next_url)
