from django.urls import path

from flags import api
from flags.rollouts import api as rollouts_api

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
    path("staff/rollouts", rollouts_api.RolloutsApi.as_view(), name="staff-rollouts"),
    path("staff/rollouts/gates", rollouts_api.GateMetricsApi.as_view(), name="staff-rollout-gates"),
    path("staff/rollouts/<str:rollout_name>", rollouts_api.RolloutApi.as_view(), name="staff-rollout"),
    path(
        "staff/rollouts/<str:rollout_name>/actions", rollouts_api.RolloutActionApi.as_view(), name="staff-rollout-act"
    ),
    path(
        "staff/rollouts/<str:rollout_name>/decisions",
        rollouts_api.RolloutDecisionsApi.as_view(),
        name="staff-rollout-decisions",
    ),
]
