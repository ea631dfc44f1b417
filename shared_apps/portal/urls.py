"""Portal routes, mounted at ``/`` after the API, admin and health routes.

Organisation pages live under ``o/<slug>/``; everything else is about the
signed-in person (or someone signing up, logging in or accepting an invitation).
"""

from django.urls import path

from shared_apps.portal.views import auth, dashboard, data, keys, members, organisation

app_name = "portal"

organisation_urls = [
    path("o/<slug:slug>/", dashboard.dashboard, name="dashboard"),
    path("o/<slug:slug>/provisioning/", dashboard.provisioning, name="provisioning"),
    path("o/<slug:slug>/status.json", dashboard.status, name="status"),
    path("o/<slug:slug>/keys/", keys.keys, name="keys"),
    path("o/<slug:slug>/keys/<str:prefix>/revoke/", keys.key_revoke, name="key-revoke"),
    path("o/<slug:slug>/keys/<str:prefix>/roll/", keys.key_roll, name="key-roll"),
    path("o/<slug:slug>/members/", members.members, name="members"),
    path("o/<slug:slug>/members/<int:membership_id>/role/", members.member_role, name="member-role"),
    path("o/<slug:slug>/members/<int:membership_id>/remove/", members.member_remove, name="member-remove"),
    path("o/<slug:slug>/members/leave/", members.member_leave, name="member-leave"),
    path("o/<slug:slug>/members/transfer/", members.ownership_transfer, name="ownership-transfer"),
    path("o/<slug:slug>/invites/<int:invite_id>/resend/", members.invite_resend, name="invite-resend"),
    path("o/<slug:slug>/invites/<int:invite_id>/withdraw/", members.invite_withdraw, name="invite-withdraw"),
    path("o/<slug:slug>/data/", data.collections, name="collections"),
    path("o/<slug:slug>/data/<str:name>/", data.collection, name="collection"),
    path("o/<slug:slug>/data/<str:name>/documents/", data.documents, name="documents"),
    path("o/<slug:slug>/devices/", data.devices, name="devices"),
    path("o/<slug:slug>/devices/revoke/", data.device_revoke, name="device-revoke"),
    path("o/<slug:slug>/conflicts/", data.conflicts, name="conflicts"),
    path("o/<slug:slug>/conflicts/<int:conflict_id>/", data.conflict, name="conflict"),
    path("o/<slug:slug>/audit/", organisation.audit, name="audit"),
    path("o/<slug:slug>/billing/", organisation.billing, name="billing"),
    path("o/<slug:slug>/billing/checkout/", organisation.billing_checkout, name="billing-checkout"),
    path("o/<slug:slug>/billing/manage/", organisation.billing_manage, name="billing-manage"),
    path("o/<slug:slug>/settings/", organisation.settings_page, name="settings"),
    path("o/<slug:slug>/settings/name/", organisation.settings_name, name="settings-name"),
    path("o/<slug:slug>/settings/sync/", organisation.settings_sync, name="settings-sync"),
    path("o/<slug:slug>/settings/delete/", organisation.delete, name="organisation-delete"),
]

urlpatterns = [
    path("", auth.home, name="home"),
    path("signup/", auth.signup, name="signup"),
    path("signup/sent/", auth.signup_sent, name="signup-sent"),
    path("signup/verify/<str:token>/", auth.signup_verify, name="signup-verify"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("password/reset/", auth.password_reset, name="password-reset"),
    path("password/reset/sent/", auth.password_reset_done, name="password-reset-done"),
    path("password/reset/<uidb64>/<token>/", auth.password_reset_confirm, name="password-reset-confirm"),
    path("password/reset/done/", auth.password_reset_complete, name="password-reset-complete"),
    path("account/password/", auth.password_change, name="password-change"),
    path("organisations/new/", auth.organisation_new, name="organisation-new"),
    path("organisations/switch/", auth.switch, name="switch"),
    path("invites/<str:token>/", auth.invite, name="invite"),
    # Stripe's return address (billing.stripe_client.billing_return_urls); carries no organisation.
    path("portal/billing/", organisation.billing_return, name="billing-return"),
    *organisation_urls,
]
