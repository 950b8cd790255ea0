"""What the agent measures on its server: host, volumes, video software."""
