"""Support pages (namespace "support"): changelog, customer lookup, feeds, release notes."""

from django.urls import path

from support import feeds, views

app_name = "support"
urlpatterns = [
    path("support/changelog", views.changelog, name="changelog"),
    path("support/releases/<int:release_id>", views.release_detail, name="release"),
    path(
        "support/releases/<int:release_id>/exposure",
        views.release_exposure,
        name="release_exposure",
    ),
    path(
        "support/releases/<int:release_id>/links/new",
        views.release_doclink_create,
        name="release_doclink_create",
    ),
    path(
        "support/flags/<str:flag_key>/links/new",
        views.flag_doclink_create,
        name="flag_doclink_create",
    ),
    path("support/links/<int:link_id>/edit", views.doclink_edit, name="doclink_edit"),
    path("support/links/<int:link_id>/delete", views.doclink_delete, name="doclink_delete"),
    path("support/links/<int:link_id>/check", views.doclink_check, name="doclink_check"),
    path("support/lookup", views.customer_lookup, name="lookup"),
    path("support/feed-token/reset", views.feed_token_reset, name="feed_token_reset"),
    path("support/feed/<str:token>.atom", feeds.ChangelogFeed(), name="changelog_feed"),
    path("release-notes/", views.release_notes, name="release_notes"),
    path("release-notes/feed.atom", feeds.PublicReleaseNotesFeed(), name="release_notes_feed"),
    path(
        "release-notes/<int:release_id>/",
        views.public_release_detail,
        name="public_release",
    ),
]
