from django.urls import include, path

from vertas import views

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", views.login, name="login"),
]
