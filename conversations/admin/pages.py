"""What the admin's own extra pages (pulls, versions, usage) need to look like its stock ones."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


def admin_page_context(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, title: str, **values: Any
) -> dict[str, Any]:
    """The site's context (navigation, user links), the model's options for breadcrumbs, and
    the page's title and values."""
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        **values,
    }
