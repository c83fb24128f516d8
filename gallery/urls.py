from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from gallery.views import accounts, media, pages, previews, projects, runs, sweeps

urlpatterns = [
    path("", projects.home, name="home"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/theme/", accounts.set_theme, name="set_theme"),
    # Log in, log out and password change; no password reset, since the site keeps no e-mail addresses.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", accounts.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
    path("projects/", projects.project_list, name="project_list"),
    path("projects/new/", projects.project_create, name="project_create"),
    path("projects/<int:project_id>/", projects.project_detail, name="project_detail"),
    path("projects/<int:project_id>/edit/", projects.project_edit, name="project_edit"),
    path("projects/<int:project_id>/delete/", projects.project_delete, name="project_delete"),
    path("projects/<int:project_id>/media/<slug:kind>/", media.project_media, name="project_media"),
    path("projects/<int:project_id>/styles/", projects.project_styles, name="project_styles"),
    path("projects/<int:project_id>/styles/<int:number>/", projects.project_style_change, name="project_style_change"),
    path("projects/<int:project_id>/styles/<int:number>/<slug:kind>/", media.project_style_media,
         name="project_style_media"),
    path("help/colour-and-style/", projects.colour_and_style_guide, name="colour_and_style_guide"),
    path("projects/<int:project_id>/runs/new/", runs.run_create, name="run_create"),
    path("projects/<int:project_id>/runs/estimate/", previews.run_estimate, name="run_estimate"),
    path("projects/<int:project_id>/preview/", previews.preview_request, name="preview_request"),
    path("projects/<int:project_id>/preview/fragment/", previews.preview_fragment, name="preview_fragment"),
    path("projects/<int:project_id>/previews/<int:preview_id>/image/", previews.preview_image, name="preview_image"),
    path("projects/<int:project_id>/sweeps/new/", sweeps.sweep_create, name="sweep_create"),
    path("sweeps/<int:sweep_id>/", sweeps.sweep_detail, name="sweep_detail"),
    path("sweeps/<int:sweep_id>/cancel/", sweeps.sweep_cancel, name="sweep_cancel"),
    path("sweeps/<int:sweep_id>/matrix.png", sweeps.sweep_png, name="sweep_png"),
    path("sweeps/<int:sweep_id>/download/", sweeps.sweep_download, name="sweep_download"),
    path("gallery/", projects.public_gallery, name="public_gallery"),
    path("runs/<int:run_id>/", runs.run_detail, name="run_detail"),
    path("runs/<int:run_id>/progress/", runs.run_progress, name="run_progress"),
    path("runs/<int:run_id>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/delete/", runs.run_delete, name="run_delete"),
    path("runs/<int:run_id>/download/", pages.run_download, name="run_download"),
    path("runs/<int:run_id>/media/<slug:kind>/", media.run_media, name="run_media"),
    path("runs/<int:run_id>/styles/<int:number>/", media.run_style_media, name="run_style_media"),
    path("runs/<int:run_id>/iterations/<int:number>/image/", media.iteration_image, name="iteration_image"),
    path("runs/<int:run_id>/iterations/<int:number>/thumb/", media.iteration_thumbnail, name="iteration_thumbnail"),
    path("compare/", pages.compare, name="compare"),
]
