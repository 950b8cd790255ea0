"""The Vigil collector: enrolls agents, stores their reports and encrypted backups, keeps
the fleet's state and checks every server against its contract. ``http`` is the web
application and its plumbing, ``health`` the monitoring core, ``backups`` the backup store,
``contracts`` the contract engine, ``storage`` the database; each feature registers itself
from one list in ``http.app``. It never imports the agent and cannot decrypt a backup.
"""
