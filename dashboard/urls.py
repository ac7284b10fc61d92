from django.urls import path

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("overview/metrics/", views.overview_metrics_partial, name="overview_metrics"),
    path("overview/activity/", views.overview_activity_partial, name="overview_activity"),
    path("infrastructure/", views.infrastructure_view, name="infrastructure"),
    path("handoffs/", views.handoff_queue_view, name="handoff_queue"),
    path("handoffs/rows/", views.handoff_queue_rows, name="handoff_queue_rows"),
    # Not under sessions/: a session id may be any word ("rows" too).
    path("session-list/rows/", views.session_list_rows, name="session_list_rows"),
    path("sessions/", views.session_list_view, name="session_list"),
    path("search/", views.search_view, name="search"),
    path("sessions/export/", views.filter_export, name="filter_export"),
    path("sessions/<str:session_id>/", views.session_detail_view, name="session_detail"),
    path("sessions/<str:session_id>/turns/", views.session_turns_older_view, name="session_turns"),
    path("sessions/<str:session_id>/turns/<int:seq>/redeliver/", views.session_redeliver_view, name="session_redeliver"),
    path("sessions/<str:session_id>/viewing/", views.session_viewing_view, name="session_viewing"),
    path("sessions/<str:session_id>/summary-panel/", views.session_summary_panel, name="session_summary_panel"),
    path("sessions/<str:session_id>/verify/", views.session_verify_view, name="session_verify"),
    path("sessions/<str:session_id>/close/", views.session_close_view, name="session_close"),
    path("sessions/<str:session_id>/summarize/", views.session_summarize_view, name="session_summarize"),
    path("sessions/<str:session_id>/takeover/", views.session_takeover_view, name="session_takeover"),
    path("sessions/<str:session_id>/reply/", views.session_reply_view, name="session_reply"),
    path("sessions/<str:session_id>/handback/", views.session_handback_view, name="session_handback"),
    path("sessions/<str:session_id>/export/", views.session_export, name="session_export"),
    path("sessions/<str:session_id>/delete/", views.session_delete_view, name="session_delete"),
    path("customers/<str:customer_id>/", views.customer_detail_view, name="customer_detail"),
    path("customers/<str:customer_id>/export/", views.customer_export, name="customer_export"),
    path("customers/<str:customer_id>/delete/", views.customer_delete_view, name="customer_delete"),
    path("preferences/time-zone/", views.time_zone_view, name="time_zone"),
]
