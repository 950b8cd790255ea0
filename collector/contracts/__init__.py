"""Contract engine: plans, business calendars, SLA clocks, contract terms, checks, incidents.

The pure logic (``calendar``, ``plans``, ``sla``, ``terms``, ``checks``, ``incidents``,
``importer``, ``pricing``, ``reports``) takes plain data and does no I/O; ``repository``,
``routes`` and ``cli`` are the only modules that touch the database, HTTP or the terminal.
"""
