from django.urls import path

from flags import api

urlpatterns = [
    path("flags", api.FlagsApi.as_view(), name="flags"),
    path("staff/flags", api.StaffFlagsApi.as_view(), name="staff-flags"),
    path("staff/flags/<str:flag_name>", api.StaffFlagApi.as_view(), name="staff-flag"),
    path("staff/flags/<str:flag_name>/history", api.StaffFlagHistoryApi.as_view(), name="staff-flag-history"),
    path("staff/switches", api.StaffSwitchesApi.as_view(), name="staff-switches"),
    path("staff/switches/<str:switch_name>", api.StaffSwitchApi.as_view(), name="staff-switch"),
    path("staff/config", api.StaffConfigsApi.as_view(), name="staff-configs"),
    path("staff/config/<str:config_name>", api.StaffConfigApi.as_view(), name="staff-config"),
    path("staff/config/<str:config_name>/versions", api.StaffConfigVersionsApi.as_view(), name="staff-config-versions"),
    path("staff/config/<str:config_name>/rollback", api.StaffConfigRollbackApi.as_view(), name="staff-config-rollback"),
]
