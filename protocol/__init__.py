"""What agent, collector and recovery tool agree on, and nothing else: typed wire messages
(``messages``, ``backup_messages``) with their route paths (``routes``), request signing
(``request_auth``), the backup envelope, archive and recipient-list formats, the backup
window grammar and the protocol's limits. It imports neither side, so either can be
replaced as long as it speaks this package.
"""
