"""Fleet health monitoring: enrolling recording servers, ingesting their health and camera
reports, the fleet and per-server status views and the partner API over them, health incidents,
agent settings, the log of refused requests, and the collector's own storage
health (writes refused while its disk is full or failing).
"""
