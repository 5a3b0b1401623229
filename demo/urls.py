from django.contrib.auth import views as auth_views
from django.urls import include, path

from demo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("watch/<str:foss>/<str:tutorial>/<str:language>/", views.watch, name="watch"),
    path("tutorial-search/", views.tutorial_search, name="tutorial-search"),
    path("cdcontent/", views.cdcontent, name="cdcontent"),
    path("feedback/", views.feedback, name="feedback"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="demo/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("eventlog/", include("django_hook.urls")),
]
