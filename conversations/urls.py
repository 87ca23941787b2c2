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
    path("conversations/sidebar/", views.sidebar, name="sidebar"),
    path("conversations/search/", views.search, name="conversation_search"),
    path(
        "conversations/<int:conversation_id>/rename/",
        views.conversation_rename,
        name="conversation_rename",
    ),
    path(
        "conversations/<int:conversation_id>/send/",
        views.conversation_send,
        name="conversation_send",
    ),
    path(
        "conversations/<int:conversation_id>/settings/",
        views.conversation_settings,
        name="conversation_settings",
    ),
    path(
        "conversations/<int:conversation_id>/pin/", views.conversation_pin, name="conversation_pin"
    ),
    path(
        "conversations/<int:conversation_id>/archive/",
        views.conversation_archive,
        name="conversation_archive",
    ),
    path(
        "conversations/<int:conversation_id>/delete/",
        views.conversation_delete,
        name="conversation_delete",
    ),
    path(
        "conversations/<int:conversation_id>/images/<int:image_id>/",
        views.message_image,
        name="message_image",
    ),
    path(
        "conversations/<int:conversation_id>/messages/",
        views.older_messages,
        name="older_messages",
    ),
]
