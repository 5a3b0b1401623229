from django.contrib.auth import views as auth_views
from django.urls import include, path

from demo import views
from demo.login import ThrottledLoginView

urlpatterns = [
    path("", views.home, name="home"),
    path("watch/<str:foss>/<str:tutorial>/<str:language>/", views.watch, name="watch"),
    path("tutorial-search/", views.tutorial_search, name="tutorial-search"),
    path("cdcontent/", views.cdcontent, name="cdcontent"),
    path("cdcontent/download/<str:foss>/<str:language>/", views.cdcontent_download, name="cdcontent-download"),
    path("feedback/", views.feedback, name="feedback"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    # The link of a password-reset mail: its uidb64 and token are never stored (docs/privacy.md).
    path("accounts/reset/<uidb64>/<token>/",
         auth_views.PasswordResetConfirmView.as_view(template_name="demo/password_reset_confirm.html"),
         name="password_reset_confirm"),
    path("eventlog/", include("django_hook.urls")),
]
