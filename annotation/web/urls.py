"""Web routes: login, dashboard, agreement, judge, adjudication, annotation progress."""
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from annotation.web import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="errormap/login.html",
                                                         next_page="dashboard"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("agreement/", views.agreement_page, name="agreement"),
    path("judge/", views.judge_page, name="judge-audit"),
    path("adjudication/", views.adjudication_page, name="adjudication"),
    # Ids of at most 18 digits: larger numbers are not ids (404, not a database error).
    re_path(r"^adjudication/(?P<pk>[0-9]{1,18})/resolve/$", views.resolve_page, name="adjudication-resolve"),
    re_path(r"^items/(?P<pk>[0-9]{1,18})/$", views.item_page, name="item"),
    path("annotation-progress/", views.labelstudio_page, name="labelstudio-progress"),
]
