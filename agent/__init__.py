"""The Vigil agent: runs on each recording server, measures its host, volumes, video
software and IP cameras, spools reports to disk and sends them to the collector exactly
once, and pushes encrypted configuration backups on the schedule the collector gives it.
``daemon`` owns the running features (health, cameras, backup), ``client`` the signed link to
the collector, ``spool`` what waits to be sent; each feature is a package with its command.
It never imports the collector: everything both sides share is in ``protocol``.
"""
