"""Web routes: login, dashboard, agreement, judge, adjudication, annotation progress."""
from django.contrib.auth import views as auth_views
from django.urls import path

from annotation.web import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="errormap/login.html",
                                                         next_page="dashboard"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("agreement/", views.agreement_page, name="agreement"),
    path("judge/", views.judge_page, name="judge-audit"),
    path("adjudication/", views.adjudication_page, name="adjudication"),
    path("annotation-progress/", views.labelstudio_page, name="labelstudio-progress"),
]
