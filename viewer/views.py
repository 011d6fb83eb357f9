from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from studies import selectors


@login_required
def home(request):
    studies = selectors.studies_visible_to(request.user).select_related("patient").order_by("-created_at")[:50]
    return render(request, "viewer/home.html", {"studies": studies})
