"""Accounts: organisations (partners and their customers), users with roles, their
sign-ins, API keys and enrollment tokens, and what each role may do."""
