"""Identity provisioning (seed 003, 002): SCIM targets, identities, directory sync and their job types."""
