from __future__ import annotations

from django.urls import path

from conversations import views

urlpatterns = [
    path("", views.home, name="home"),
    path("conversations/new/", views.conversation_new, name="conversation_new"),
    path("conversations/<int:conversation_id>/", views.conversation_detail, name="conversation"),
    path(
        "conversations/<int:conversation_id>/export/<str:fmt>/",
        views.conversation_export,
        name="conversation_export",
    ),
    path("export/", views.export_all, name="export_all"),
    path("conversations/import/", views.conversation_import, name="conversation_import"),
    path(
        "conversations/<int:conversation_id>/rename/",
        views.conversation_rename,
        name="conversation_rename",
    ),
]
