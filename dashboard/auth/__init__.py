"""Who may use the dashboard and the API: users, their sessions, API tokens, roles and the audit trail."""
