"""Provider staff roles are Django groups; a superuser acts in every staff role."""

ACCOUNT_MANAGERS = "account_managers"
FINANCE = "finance"
PLATFORM_ADMINS = "platform_admins"
STAFF_GROUPS = (ACCOUNT_MANAGERS, FINANCE, PLATFORM_ADMINS)
