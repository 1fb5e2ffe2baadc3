"""Identity: members, profiles, wallet sign-in (SIWE) and API tokens (a sub-domain of proposals)."""
