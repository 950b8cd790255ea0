"""Encrypted configuration backups, collector side: object storage, resumable uploads,
the catalog, retention and the integrity pass. The collector never decrypts a backup and
holds no key that could (see ``docs/backup-storage.md``).

Entry points for the application: :func:`collector.backups.handlers.setup`,
:func:`collector.backups.settings.agent_backup_settings`,
:func:`collector.backups.cli.register`, :func:`collector.backups.objectstore.open_object_store`.
"""
