"""Self-service sign-up, off unless ALLOW_SIGNUP is set (by default admins create accounts)."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404
from django.shortcuts import redirect, render


def signup(request):
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is turned off: ask an administrator for an account.")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "registration/signup.html", {"form": form})


def site(request):
    """Template context: whether the sign-in page offers sign-up."""
    return {"allow_signup": settings.ALLOW_SIGNUP}
